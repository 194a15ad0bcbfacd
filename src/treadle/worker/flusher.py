"""The flusher: writes outcomes in batches (one transaction per batch).

Its own thread, so a slow or unavailable store holds back no slot: it retries through
database outages so nothing is lost, falls back to one-by-one writes when one outcome
cannot be written, and then tells the observer and the finish listeners.
"""

from __future__ import annotations

import queue
import time
from typing import Literal

from treadle.core.errors import StoreUnavailable
from treadle.core.outcome import Outcome
from treadle.logs import get_logger
from treadle.worker.state import WorkerState, _Running
from treadle.worker.supervise import describe
from treadle.worker.writing import store_batch, store_each

log = get_logger("treadle.worker")

# Put on the outcomes queue to wake the flusher for stream items (none are outcomes).
_STREAMS: Literal["streams"] = "streams"


class Flusher(WorkerState):
    def _flush_loop(self) -> None:
        while True:
            item = self._outcomes.get()
            if item is None:
                self.streams.flush(self._stopped)
                return
            batch = [] if isinstance(item, str) else [item]
            while len(batch) < 1000:
                try:
                    nxt = self._outcomes.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._outcomes.put(None)  # keep the sentinel for after this batch
                    break
                if not isinstance(nxt, str):
                    batch.append(nxt)
            # Stream items first: a job's final record follows its last item.
            self.streams.flush(self._stopped)
            if batch:
                self._write(batch)
                with self._room:
                    self._unwritten -= len(batch)
                    self._room.notify()  # an isolated suspect's outcome may be stored now

    def _write(self, batch: list[tuple[_Running, Outcome]]) -> None:
        backoff = 0.05
        one_by_one = False
        while True:
            try:
                if one_by_one:
                    batch, accepted = store_each(self.store, self.id, batch)
                else:
                    accepted = store_batch(self.store, batch)
                break
            except StoreUnavailable as exc:
                # Outcomes are never dropped: the guarded write is safe to repeat.
                log.warning("writing outcomes failed; retrying", worker=self.id,
                            error=str(exc), pending=len(batch))
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception as exc:
                if one_by_one:
                    raise  # store_each deals with every failure but an outage
                # Not an outage: something in this batch cannot be written. Write the
                # outcomes one by one so one bad outcome cannot hold back the others.
                log.error("writing outcomes failed; writing them one by one", worker=self.id,
                          error=describe(exc), pending=len(batch), exc_info=exc)
                one_by_one = True
        self._report(batch, accepted)

    def _report(self, batch: list[tuple[_Running, Outcome]], accepted: list[bool]) -> None:
        for (entry, oc), ok in zip(batch, accepted, strict=True):
            self.processed += 1
            log.info(
                "job finished" if ok else "job outcome refused (lease lost)",
                job_id=entry.job.id, attempt=entry.job.attempt, worker=self.id,
                outcome=oc.kind.value,
                error_class=oc.error.error_class.value if oc.error else None,
            )
            if ok:
                try:
                    self.observer.finished(self.id, entry.job, oc,
                                           time.perf_counter() - entry.started)
                except Exception as exc:  # metrics must never break the worker
                    log.error("observer failed", error=describe(exc))
                for listener in self.on_finished:
                    try:
                        listener(entry.job, oc)
                    except Exception as exc:  # a listener must never break the worker
                        log.error("on_finished listener failed", error=repr(exc))

