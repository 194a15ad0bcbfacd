"""Live job streams: what a running job emits, logs and reports, stored durably and
followed live (``GET /v1/jobs/{id}/stream``, ``handle.stream()``, ``treadle jobs watch``).
See docs/streams.md and docs/adr/0011-live-job-streams.md."""

from treadle.streams.model import DEFAULT_LIMITS, StreamItem, StreamLimits

__all__ = ["DEFAULT_LIMITS", "StreamItem", "StreamLimits"]
