"""Submission: enqueue jobs (one transaction, group commit, ADR 0019), check callbacks.

Everything between a producer's call and a durable job: the egress check of callback
URLs, the tracing of the submission (ADR 0021) and the store's group commit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from treadle.app_state import AppState
from treadle.core.errors import InvalidInput
from treadle.core.job import NewJob
from treadle.egress import EgressError
from treadle.jobs import JobHandle
from treadle.loop_bridge import wrap_future
from treadle.store.groupcommit import Guard
from treadle.task import check_job_options

if TYPE_CHECKING:
    pass


class Submission(AppState):
    """The app's submission methods (``enqueue``, ``defer``)."""

    def enqueue(self, jobs: Sequence[NewJob], *, guard: Guard | None = None) -> list[JobHandle]:
        """Enqueue ``jobs`` in one transaction; returns once they are durable.

        Concurrent callers (threads) share one commit (group commit, ADR 0019); ``guard``
        runs in that transaction first and may refuse this submission alone."""
        self._check_callbacks(jobs)
        app = self._app
        if not self.tracing.enabled:
            return [JobHandle.of(app, e) for e in self.store.enqueue(jobs, guard=guard)]
        with self.tracing.submit(jobs) as traced:  # jobs join the current trace (ADR 0021)
            return [JobHandle.of(app, e) for e in self.store.enqueue(traced, guard=guard)]

    async def enqueue_async(
        self, jobs: Sequence[NewJob], *, guard: Guard | None = None
    ) -> list[JobHandle]:
        """:meth:`enqueue` for an asyncio event loop: awaits the group commit without
        holding a thread. Cancelling it before its batch is written withdraws the jobs."""
        self._check_callbacks(jobs)
        if not self.tracing.enabled:
            done = await wrap_future(self.store.submit(jobs, guard=guard))
            return [JobHandle.of(self._app, e) for e in done]
        with self.tracing.submit(jobs) as traced:  # jobs join the current trace (ADR 0021)
            done = await wrap_future(self.store.submit(traced, guard=guard))
            return [JobHandle.of(self._app, e) for e in done]

    def _check_callbacks(self, jobs: Sequence[NewJob]) -> None:
        if isinstance(jobs, str | bytes | Mapping):
            raise InvalidInput("enqueue takes a sequence of NewJob requests")
        for nj in jobs:
            if not isinstance(nj, NewJob):
                raise InvalidInput(
                    f"enqueue takes NewJob requests, got {type(nj).__name__}")
            if nj.callback_url is not None:
                self.check_callback_url(nj.callback_url)

    def check_callback_url(self, url: str) -> None:
        """Refuse, before anything is stored, a callback URL the egress policy can never
        deliver to (bad scheme, credentials, a loopback/private literal address, a
        ``localhost`` name). Delivery resolves and checks the address again."""
        try:
            self.egress.check_static(url)
        except EgressError:
            raise InvalidInput(
                "callback_url must be an http(s) URL without credentials whose host is "
                "a public address (private ranges only if the operator allowed them)",
                detail={"setting": "TREADLE_EGRESS_ALLOW"},
            ) from None

    def defer(self, task: str, payload: Mapping[str, Any] | None = None, **opts: Any) -> JobHandle:
        """Enqueue a job of a registered task by name."""
        new_job = self._app.get_task(task).new_job
        return self.enqueue([new_job(payload or {}, **check_job_options(opts))])[0]

