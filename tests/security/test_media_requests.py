"""Hostile media pipeline requests on the library surface (ADR 0014, ADR 0006), both
stores: ``treadle.media.submit`` refuses at the call what could never run, and stores
nothing.

Before: a local path too long to look up raised OSError; ``renditions=5`` a TypeError; a
URL with control characters was stored and failed only at fetch; a source with a second
or unknown key ({"url": ..., "artifact": 1}, {"url": ..., "extra": ...}) was accepted
with the rest dropped unseen; an unknown option whose name held a lone surrogate made
the refusal's own message unencodable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from treadle import Treadle
from treadle.artifacts import LocalArtifactStore
from treadle.core.errors import InvalidInput

pytest.importorskip("av", reason="the media extra (PyAV) is not installed")

from treadle.media.pipeline import submit

URL = "https://example.org/a.mp4"


@pytest.mark.parametrize(("source", "options"), [
    ("/tmp/" + "a" * 100_000, {}),
    ("/tmp/a\x00b.mp4", {}),
    ({"url": "https://example.org/\r\nX-Injected: 1"}, {}),
    ({"url": "https://example.org/\x7f"}, {}),
    ({"url": URL, "artifact": 1}, {}),
    ({"url": URL, "extra": [[[]]]}, {}),
    ({"url": URL, "name": "dropped.mp4"}, {}),
    ({"url": URL}, {"renditions": 5}),
    ({"url": URL}, {"renditions": {"360p": 1}}),
    ({"url": URL}, {"\ud800": 1}),
], ids=lambda v: repr(v)[:40])
def test_media_requests_that_could_never_run_are_refused_and_store_nothing(
    db_url: str, tmp_path: Path, source: Any, options: dict[str, Any]
) -> None:
    with Treadle(db_url) as app:
        app.configure_artifacts(LocalArtifactStore(tmp_path / "blobs"))
        with pytest.raises(InvalidInput) as refused:
            submit(app, source, **options)
        refused.value.message.encode()  # the refusal itself can be shown anywhere
        assert app.list_jobs() == []
