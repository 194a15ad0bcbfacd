"""A worker's settings (validated at construction) and the services it runs.

Apart from the worker's threads so that code which only configures a worker (the CLI,
plug-ins declaring services) need not read how one runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from treadle.core.errors import ConfigurationError
from treadle.core.lease import LeaseConfig


class Service(Protocol):
    """Periodic maintenance a job kind brings (the workflow waker's sweep)."""

    interval: float

    def run_once(self) -> object: ...


@dataclass(frozen=True)
class WorkerConfig:
    queues: tuple[str, ...] | None = None  # None: every queue
    concurrency: int = 10
    lease: LeaseConfig = field(default_factory=LeaseConfig)
    poll_interval: float = 2.0  # safety net only; wake-ups come from the store
    shutdown_grace: float = 30.0
    reap_interval: float = 5.0
    prune_interval: float = 60.0  # retention passes (ADR 0010)
    name: str | None = None
    burst: bool = False  # stop once no work is left (tests, one-shot runs)
    # Claim ahead (ADR 0017): jobs claimed beyond the free slots, held under lease and
    # heartbeat, started as slots free up, released at shutdown. None: adaptive, from
    # ``concurrency`` up to 16 x ``concurrency`` while a backlog drains faster than a claim
    # round trip refills it, back to ``concurrency`` once a claim comes back short.
    prefetch: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= 10_000:
            raise ConfigurationError("concurrency must be between 1 and 10000")
        if self.prefetch is not None and not 0 <= self.prefetch <= 10_000:
            raise ConfigurationError("prefetch must be between 0 and 10000")
        if self.poll_interval <= 0 or self.shutdown_grace < 0 or self.reap_interval <= 0 \
                or self.prune_interval <= 0:
            raise ConfigurationError("intervals must be positive")
        if self.queues is not None and not self.queues:
            raise ConfigurationError("queues must name at least one queue (or be None for all)")
        if self.name is not None and not (self.name.isprintable() and 0 < len(self.name) <= 200):
            # The name is stored with every claim and heartbeat (ADR 0006).
            raise ConfigurationError("a worker name must be 1-200 printable characters")

