"""POST /v1/media over HTTP: a tenant's artifact as the source, refused URLs, other tenants."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.api.conftest import Api, api_worker, wait_finished
from treadle.artifacts import LocalArtifactStore
from treadle.core.job import NewJob
from treadle.media import register
from treadle.media.synth import make_video


@pytest.fixture
def source_artifact(api: Api, tmp_path: Path) -> int:
    api.treadle.configure_artifacts(LocalArtifactStore(tmp_path / "blobs"))
    register(api.treadle)
    clip = make_video(tmp_path / "in.mp4", seconds=2, width=160, height=120)
    job = api.treadle.store.enqueue([NewJob(task="upload", payload={},
                                            tenant="tenant-a")])[0].job.id
    return api.treadle.artifacts.put(job, "uploads/in.mp4", clip, tenant="tenant-a").id


def test_media_from_an_artifact(api: Api, source_artifact: int) -> None:
    body = {"source": {"artifact": source_artifact}, "renditions": ["144p"], "thumbnails": 1}
    with api.client("a") as c, api_worker(api.treadle):
        r = c.post("/v1/media", json=body)
        assert r.status_code == 202, r.text
        assert r.headers["location"] == f"/v1/jobs/{r.json()['id']}"
        job = wait_finished(c, r.json()["id"], timeout=90)
        assert job["status"] == "succeeded", job
        names = [a["name"] for a in c.get(f"/v1/jobs/{job['id']}/artifacts").json()["artifacts"]]
        job_id = job["id"]
        assert isinstance(job_id, int)
        (encode,) = [s for s in api.treadle.job_steps(job_id) if s.name == "encode"]
        segment = c.get(f"/v1/jobs/{encode.children[0]}").json()
    assert "renditions/144p.mp4" in names and "thumbnails/thumb_00.jpg" in names
    # The segment job's frames, as its worker's heartbeat carried them (ADR 0016).
    assert segment["task"] == "treadle.media.segment"
    assert segment["progress"] == {"done": 50.0, "total": 50.0, "message": "144p segment 0"}


def test_other_tenants_artifact_is_404(api: Api, source_artifact: int) -> None:
    with api.client("b") as c:
        r = c.post("/v1/media", json={"source": {"artifact": source_artifact},
                                      "renditions": ["144p"]})
    assert r.status_code == 404
    assert api.treadle.list_jobs() == [j for j in api.treadle.list_jobs() if j.task == "upload"]


@pytest.mark.parametrize("body", [
    {"source": {"url": "http://127.0.0.1/x.mp4"}},
    {"source": {"url": "http://169.254.169.254/latest"}},
    {"source": {"url": "file:///etc/passwd"}},
    {"source": {}},
    {"source": {"artifact": 1, "url": "https://example.org/a.mp4"}},
    {"source": {"sha256": "0" * 64}},
    {"source": {"artifact": 1}, "renditions": ["9999p"]},
    {"source": {"artifact": 1}, "renditions": [], "thumbnails": 0},
])
def test_refused_requests_store_nothing(api: Api, body: dict[str, object]) -> None:
    from treadle.egress import EgressPolicy

    api.treadle.egress = EgressPolicy()  # this suite opens loopback for its callbacks
    register(api.treadle)
    with api.client("a") as c:
        r = c.post("/v1/media", json=body)
    assert r.status_code in (404, 422), r.text
    assert api.treadle.list_jobs() == []
