"""pydantic is the agents extra's: import it here, once, with an error naming the extra."""

from __future__ import annotations

from treadle.core.errors import MissingExtra

try:
    import pydantic
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtra("agents", "pydantic") from exc

__all__ = ["pydantic"]
