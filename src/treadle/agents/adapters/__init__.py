"""Model adapters behind the one :class:`~treadle.agents.messages.ModelAdapter` seam.

``resolve("openai:gpt-4.1-mini")`` and friends build one from a model string:

- ``openai:<model>``: the official ``openai`` SDK, Chat Completions (any OpenAI-compatible
  server through the SDK's own ``OPENAI_BASE_URL``)
- ``anthropic:<model>``: the official ``anthropic`` SDK, Messages (``ANTHROPIC_BASE_URL``)
- ``cli:<command>``: a local command, the prompt on stdin
- ``scripted:<file>``: a file of responses, replayed (offline demos and tests)
"""

from __future__ import annotations

from treadle.agents.messages import ModelAdapter
from treadle.core.errors import ConfigurationError

PREFIXES = ("openai", "anthropic", "cli", "scripted")


def resolve(model: str | ModelAdapter) -> ModelAdapter:
    if not isinstance(model, str):
        if not hasattr(model, "complete") or not hasattr(model, "model"):
            raise ConfigurationError("model must be a string like 'openai:gpt-4.1-mini' or a "
                                     "ModelAdapter")
        return model
    prefix, sep, rest = model.partition(":")
    if not sep or not rest or prefix not in PREFIXES:
        raise ConfigurationError(
            f"model {model!r} must be '<adapter>:<name>' with adapter one of {', '.join(PREFIXES)}")
    if prefix == "scripted":
        from treadle.agents.adapters.scripted import ScriptedAdapter

        return ScriptedAdapter.from_file(rest)
    if prefix == "openai":
        from treadle.agents.adapters.openai_chat import OpenAIAdapter

        return OpenAIAdapter(rest)
    if prefix == "anthropic":
        from treadle.agents.adapters.anthropic_messages import AnthropicAdapter

        return AnthropicAdapter(rest)
    from treadle.agents.adapters.cli import CliAdapter

    return CliAdapter(rest)
