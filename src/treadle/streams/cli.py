"""``treadle jobs watch ID``: follow a job in the terminal.

A rich live view (state, a progress bar from the latest ``progress`` item, the last log
lines, a count of emitted items) fed by ``handle.stream()``; ``--json`` prints one JSON
line per event instead (for scripts). The exit status says how the job ended (0 only if
it succeeded). Text from the job is shown as plain text with control characters
replaced, so a job cannot drive the terminal.
"""

from __future__ import annotations

import contextlib
import json
import unicodedata
from collections import deque
from collections.abc import Iterable
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from treadle.cli.common import DbOption, clean_errors, console, local_app
from treadle.cli.remote import KeyOption, UrlOption, remote
from treadle.streams.follow import JobStream, StreamEvent
from treadle.streams.model import LOG, PROGRESS

LOG_LINES = 12


def _plain(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return "".join("?" if unicodedata.category(c) in ("Cc", "Cf") else c
                   for c in text[:limit])


class _View:
    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.status = "?"
        self.attempt = 0
        self.done: float | None = None
        self.total: float | None = None
        self.message = ""
        self.logs: deque[str] = deque(maxlen=LOG_LINES)
        self.items = 0
        self.last_item = ""

    def apply(self, ev: StreamEvent) -> None:
        self.status, self.attempt = ev.status, ev.attempt
        item = ev.item
        if item is None:
            return
        if item.kind == LOG:
            self.logs.append(f"[{item.attempt}] {_plain(item.data)}")
        elif item.kind == PROGRESS and isinstance(item.data, dict):
            self.done, self.total = item.data.get("done"), item.data.get("total")
            self.message = _plain(item.data.get("message") or "")
        else:
            self.items += 1
            self.last_item = f"{_plain(item.kind, 64)}: {_plain(item.data, 200)}"

    def render(self) -> Group:
        head = Table.grid(padding=(0, 2))
        head.add_row(Text(f"job {self.job_id}", style="bold"),
                     Text(self.status, style="yellow" if self.status == "running" else ""),
                     Text(f"attempt {self.attempt}"), Text(f"{self.items} items"))
        parts: list[Any] = [head]
        if self.done is not None:
            total = self.total if self.total else None
            bar = ProgressBar(total=float(total) if total else None,
                              completed=float(self.done), width=40)
            label = f"{self.done}/{self.total}" if total else f"{self.done}"
            line = Table.grid(padding=(0, 2))
            line.add_row(bar, Text(label), Text(self.message))
            parts.append(line)
        if self.last_item:
            parts.append(Text(self.last_item, style="cyan"))
        parts.extend(Text(line, style="dim") for line in self.logs)
        return Group(*parts)


def watch(
    job_id: int,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per event.")] = False,
    after: Annotated[int, typer.Option(help="Resume after this stream item.")] = 0,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Follow a job live: state, progress, log lines and emitted items, until it ends."""
    with clean_errors(), contextlib.ExitStack() as closing:
        client = remote(url, key)
        if client is not None:
            closing.enter_context(client)
        source: Any = client if client is not None else closing.enter_context(local_app(db))
        source.get_job(job_id)  # a clear "not found" before anything is drawn
        # Over HTTP: the SSE endpoint, resumed with Last-Event-ID if the link drops.
        stream: Iterable[StreamEvent] = (
            client.stream(job_id, after=after) if client is not None
            else JobStream(source, job_id, after=after, poll=0.25))
        final = None
        if as_json:
            for ev in stream:
                out: dict[str, Any] = {"event": ev.event, "seq": ev.seq, "status": ev.status,
                                       "attempt": ev.attempt}
                if ev.item is not None:
                    out["item"] = ev.item.to_json()
                if ev.job is not None:
                    final = ev.job
                    out["job"] = ev.job.to_json()
                print(json.dumps(out, ensure_ascii=False, default=str), flush=True)
        else:
            view = _View(job_id)
            with Live(view.render(), console=console, refresh_per_second=8,
                      transient=False) as live:
                for ev in stream:
                    view.apply(ev)
                    if ev.job is not None:
                        final = ev.job
                    live.update(view.render())
        if final is None or final.status.value != "succeeded":
            raise typer.Exit(1)
