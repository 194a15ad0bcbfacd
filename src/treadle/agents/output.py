"""Validating the final answer: a pydantic model or a JSON Schema, plus Python validators.

The model's text is hostile input: it is bounded, fenced code blocks are unwrapped, and
every failure becomes a list of readable errors that goes back to the model as a repair
request (at most ``max_repairs`` times).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from treadle.agents._pydantic import pydantic
from treadle.agents.tools import MAX_ARGUMENT_DEPTH, _depth
from treadle.core.errors import ConfigurationError

Validator = Callable[[Any], Any]  # raises (ValueError, AssertionError...) when invalid
MAX_OUTPUT_CHARS = 1 << 20
_FENCE = re.compile(r"^\s*```[a-zA-Z0-9_-]*\s*\n(.*)\n\s*```\s*$", re.DOTALL)


class OutputSpec:
    """What the final answer must be; None output means free text."""

    def __init__(self, output: type[pydantic.BaseModel] | Mapping[str, Any] | None,
                 validators: Sequence[Validator] = ()) -> None:
        self.model: type[pydantic.BaseModel] | None = None
        self.schema: dict[str, Any] | None = None
        self._jsonschema: Any = None
        if isinstance(output, type) and issubclass(output, pydantic.BaseModel):
            self.model = output
            self.schema = output.model_json_schema()
        elif isinstance(output, Mapping):
            self.schema = dict(output)
            self._jsonschema = _compile(self.schema)
        elif output is not None:
            raise ConfigurationError("output must be a pydantic model class, a JSON Schema "
                                     "(dict) or None")
        self.validators = tuple(validators)

    @property
    def structured(self) -> bool:
        return self.schema is not None

    def instructions(self) -> str:
        if self.schema is None:
            return ""
        return ("\n\nAnswer with a single JSON value (no prose) that matches this JSON "
                "Schema:\n" + json.dumps(self.schema, separators=(",", ":")))

    def validate(self, text: str) -> tuple[Any, list[str]]:
        """(output, errors): errors empty when ``text`` is a valid answer."""
        value: Any = text
        if self.structured:
            value, err = _parse(text)
            if err:
                return None, [err]
            if self.model is not None:
                try:
                    value = self.model.model_validate(value).model_dump(mode="json")
                except pydantic.ValidationError as exc:
                    return None, [f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}"
                                  for e in exc.errors()[:20]]
            else:
                errors = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                          for e in self._jsonschema.iter_errors(value)]
                if errors:
                    return None, errors[:20]
        for check in self.validators:
            try:
                check(value)
            except Exception as exc:  # a validator's failure is the model's to repair
                return None, [f"{getattr(check, '__name__', 'validator')}: {exc}"]
        return value, []


def _parse(text: str) -> tuple[Any, str]:
    if len(text) > MAX_OUTPUT_CHARS:
        return None, f"the answer is {len(text)} characters; the limit is {MAX_OUTPUT_CHARS}"
    m = _FENCE.match(text)
    body = m.group(1) if m else text.strip()
    if _depth(body) > MAX_ARGUMENT_DEPTH:
        return None, f"the answer nests deeper than {MAX_ARGUMENT_DEPTH} levels"
    try:
        return json.loads(body), ""
    except (ValueError, RecursionError) as exc:
        return None, f"the answer is not valid JSON: {exc}"


def _compile(schema: dict[str, Any]) -> Any:
    try:
        import jsonschema  # type: ignore[import-untyped]  # no stubs shipped
    except ImportError as exc:  # pragma: no cover - part of the agents extra
        from treadle.core.errors import MissingExtra

        raise MissingExtra("agents", "jsonschema") from exc
    try:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ConfigurationError(f"output is not a valid JSON Schema: {exc.message}") from None
    return cls(schema)
