"""Artifacts from workflow code: ``ctx.artifacts`` in a workflow, recorded with its step."""

from __future__ import annotations

from pathlib import Path

from treadle import Treadle
from treadle.artifacts import LocalArtifactStore
from treadle.testing import run_worker
from treadle.workflows import WorkflowContext


def test_a_workflow_step_puts_and_the_step_is_recorded(db_url: str, tmp_path: Path) -> None:
    app = Treadle(db_url, artifacts=LocalArtifactStore(tmp_path / "blobs"))
    app.migrate()

    def render(ctx: WorkflowContext, n: int) -> str:
        return ctx.artifacts.put(f"out/{n}.txt", f"part {n}".encode()).name

    @app.workflow(name="wf.files")
    def files(ctx: WorkflowContext, count: int) -> list[str]:
        names = [ctx.step(f"render:{i}", render, ctx, i) for i in range(count)]
        ctx.artifacts.put("summary.txt", ", ".join(names).encode())  # outside any step
        return names

    try:
        with run_worker(app):
            job = files.defer(count=2).wait(30)
        assert job.status.value == "succeeded", job.error
        arts = {a.name: a for a in app.job_artifacts(job.id)}
        assert arts["out/0.txt"].step == "render:0" and arts["out/1.txt"].step == "render:1"
        assert arts["summary.txt"].step is None
        assert app.artifacts.read_bytes(arts["out/1.txt"]) == b"part 1"
    finally:
        app.close()
