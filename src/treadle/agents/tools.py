"""``@tool``: a typed Python function the model may call.

The signature and docstring become the JSON Schema the model sees; pydantic validates
the arguments the model sends. Arguments are hostile input: size and nesting are bounded
before parsing, and anything malformed becomes an error *returned to the model* (it can
try again), never a crash of the run.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, get_type_hints, overload

from treadle.agents._pydantic import pydantic
from treadle.agents.messages import ToolSpec
from treadle.core.errors import ConfigurationError

MAX_ARGUMENT_BYTES = 256 << 10
MAX_ARGUMENT_DEPTH = 64
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class ToolContext:
    """Declare a parameter of this type to receive it (it is not shown to the model).

    ``idempotency_key`` is stable across retries and resumes of the run: hand it to the
    outside system a side-effecting tool writes to, so a repeated call is a no-op there."""

    job_id: int
    tenant: str
    call_id: str
    idempotency_key: str


class ToolArgumentError(ValueError):
    """The model's arguments cannot be used; the message goes back to the model."""


class Tool:
    """A registered tool. Call it like the function; the agent calls :meth:`invoke`."""

    def __init__(
        self, fn: Callable[..., Any], *, name: str | None = None,
        description: str | None = None, safe_to_repeat: bool = True,
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        if not _NAME.match(self.name):
            raise ConfigurationError(f"tool name {self.name!r} must match {_NAME.pattern}")
        doc = inspect.getdoc(fn) or ""
        summary, arg_docs = _parse_doc(doc)
        self.description = description or summary or self.name
        self.safe_to_repeat = safe_to_repeat
        self._ctx_param: str | None = None
        self._model = self._build_model(arg_docs)
        self.parameters: dict[str, Any] = self._model.model_json_schema()
        self.parameters.pop("title", None)

    def __repr__(self) -> str:
        return f"<Tool {self.name!r}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, self.parameters)

    def _build_model(self, arg_docs: Mapping[str, str]) -> type[pydantic.BaseModel]:
        try:
            hints = get_type_hints(self.fn)
        except Exception as exc:  # a forward reference that does not resolve
            raise ConfigurationError(f"tool {self.name!r}: cannot read its types: {exc}") from None
        fields: dict[str, Any] = {}
        for p in inspect.signature(self.fn).parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise ConfigurationError(f"tool {self.name!r}: *args/**kwargs are not allowed")
            annotation = hints.get(p.name, Any)
            if annotation is ToolContext:
                self._ctx_param = p.name
                continue
            default = ... if p.default is p.empty else p.default
            fields[p.name] = (annotation, pydantic.Field(default,
                                                         description=arg_docs.get(p.name)))
        config = pydantic.ConfigDict(extra="forbid")
        return pydantic.create_model(f"{self.name}_args", __config__=config, **fields)

    def parse(self, arguments: str) -> dict[str, Any]:
        """The validated keyword arguments, or :class:`ToolArgumentError`."""
        data = parse_arguments(arguments)
        try:
            model = self._model.model_validate(data)
        except pydantic.ValidationError as exc:
            raise ToolArgumentError(_errors(exc)) from None
        return {k: getattr(model, k) for k in type(model).model_fields}

    def invoke(self, arguments: str, ctx: ToolContext) -> Any:
        kwargs = self.parse(arguments)
        if self._ctx_param is not None:
            kwargs[self._ctx_param] = ctx
        return self.fn(**kwargs)


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *, name: str | None = None, description: str | None = None, safe_to_repeat: bool = True
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None, /, *, name: str | None = None,
    description: str | None = None, safe_to_repeat: bool = True,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make ``fn`` a tool (bare ``@tool`` or ``@tool(safe_to_repeat=False)``).

    ``safe_to_repeat=False`` marks a side effect: such a tool should take a
    :class:`ToolContext` and pass its ``idempotency_key`` on."""

    def wrap(f: Callable[..., Any]) -> Tool:
        return Tool(f, name=name, description=description, safe_to_repeat=safe_to_repeat)

    return wrap(fn) if fn is not None else wrap


def parse_arguments(arguments: str) -> dict[str, Any]:
    """The model's raw argument text as an object, bounded before it is parsed."""
    if not isinstance(arguments, str):
        raise ToolArgumentError("arguments must be a JSON object")
    if len(arguments) > MAX_ARGUMENT_BYTES:
        raise ToolArgumentError(f"arguments are {len(arguments)} characters; the limit is "
                                f"{MAX_ARGUMENT_BYTES}")
    if _depth(arguments) > MAX_ARGUMENT_DEPTH:
        raise ToolArgumentError(f"arguments nest deeper than {MAX_ARGUMENT_DEPTH} levels")
    if not arguments.strip():
        return {}
    try:
        data = json.loads(arguments)
    except (ValueError, RecursionError) as exc:
        raise ToolArgumentError(f"arguments are not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ToolArgumentError("arguments must be a JSON object")
    return data


def _depth(text: str) -> int:
    """Deepest bracket nesting outside strings, in one pass (no recursion to exhaust)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _errors(exc: pydantic.ValidationError) -> str:
    parts = []
    for err in exc.errors()[:10]:
        where = ".".join(str(p) for p in err.get("loc", ())) or "arguments"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "invalid arguments: " + "; ".join(parts)


def _parse_doc(doc: str) -> tuple[str, dict[str, str]]:
    """The summary (text before ``Args:``) and per-argument lines of a Google-style doc."""
    summary_lines: list[str] = []
    args: dict[str, str] = {}
    section = "summary"
    current: str | None = None
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped.lower() in ("args:", "arguments:", "parameters:"):
            section = "args"
            continue
        if stripped.lower() in ("returns:", "raises:", "examples:"):
            section = "other"
            continue
        if section == "summary":
            summary_lines.append(line)
        elif section == "args" and stripped:
            m = re.match(r"^(\w+)\s*(\([^)]*\))?\s*:\s*(.*)$", stripped)
            if m and line.startswith((" ", "\t")) and m.group(1):
                current = m.group(1)
                args[current] = m.group(3)
            elif current is not None:
                args[current] += " " + stripped
    return "\n".join(summary_lines).strip(), args
