"""Artifacts over HTTP: list, download (whole, ranges), tenant isolation, S3 redirects."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.api.conftest import Api, api_worker, wait_finished
from treadle import JobContext
from treadle.artifacts import LocalArtifactStore

DATA = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture
def produced(api: Api, tmp_path: Path) -> tuple[int, list[dict[str, Any]]]:
    """A job of tenant a that stored two artifacts; its id and its artifacts (as listed)."""
    api.treadle.configure_artifacts(LocalArtifactStore(tmp_path / "blobs"))

    @api.treadle.task(name="make_files", pass_context=True)
    def make_files(ctx: JobContext) -> None:
        ctx.artifacts.put("data/blob.bin", DATA)
        ctx.artifacts.put("thumb.png", b"\x89PNG\r\n\x1a\nfake", content_type="image/png")

    with api.client("a") as c, api_worker(api.treadle):
        job_id = c.post("/v1/jobs", json={"task": "make_files", "payload": {}}).json()["id"]
        assert wait_finished(c, job_id)["status"] == "succeeded"
        listed = c.get(f"/v1/jobs/{job_id}/artifacts")
    assert listed.status_code == 200
    return job_id, listed.json()["artifacts"]


def test_list_and_download(api: Api, produced: tuple[int, list[dict[str, Any]]]) -> None:
    _, arts = produced
    assert [a["name"] for a in arts] == ["data/blob.bin", "thumb.png"]
    blob = arts[0]
    assert blob["size"] == len(DATA) and blob["sha256"] == hashlib.sha256(DATA).hexdigest()
    with api.client("a") as c:
        r = c.get(blob["url"])
        assert r.status_code == 200 and r.content == DATA
        assert r.headers["content-type"] == "application/octet-stream"
        assert r.headers["content-disposition"] == "attachment; filename*=UTF-8''blob.bin"
        assert r.headers["accept-ranges"] == "bytes"
        img = c.get(arts[1]["url"], params={"inline": "true"})
        assert img.headers["content-disposition"].startswith("inline;")


@pytest.mark.parametrize(("header", "status", "expect"), [
    ("bytes=0-9", 206, DATA[0:10]),
    ("bytes=10000-", 206, DATA[10000:]),
    ("bytes=-5", 206, DATA[-5:]),
    ("bytes=10230-99999", 206, DATA[10230:]),
    ("bytes=0-1,5-6", 200, DATA),  # several ranges: answered whole (allowed by RFC 9110)
    ("lines=1-2", 200, DATA),
    ("bytes=20000-", 416, b""),
])
def test_ranges(api: Api, produced: tuple[int, list[dict[str, Any]]], header: str,
                status: int, expect: bytes) -> None:
    url = produced[1][0]["url"]
    with api.client("a") as c:
        r = c.get(url, headers={"Range": header})
    assert r.status_code == status
    if status != 416:
        assert r.content == expect
    if status == 206:
        assert r.headers["content-range"].endswith(f"/{len(DATA)}")


def test_other_tenants_get_404(api: Api, produced: tuple[int, list[dict[str, Any]]]) -> None:
    job_id, arts = produced
    with api.client("b") as c:
        assert c.get(f"/v1/jobs/{job_id}/artifacts").status_code == 404
        for a in arts:
            r = c.get(a["url"])
            assert r.status_code == 404
            assert r.headers["content-type"] == "application/problem+json"
        assert c.get("/v1/artifacts/0").status_code == 404
        assert c.get(f"/v1/artifacts/{2**63}").status_code in (404, 422)
    with httpx.Client(base_url=api.url) as anon:
        assert anon.get(arts[0]["url"]).status_code == 401


def test_s3_download_is_a_presigned_redirect(api: Api, s3_store: Any) -> None:
    api.treadle.configure_artifacts(s3_store)
    job = api.treadle.store.enqueue([_new_job("tenant-a")])[0].job
    art = api.treadle.artifacts.put(job.id, "report.txt", b"from s3", tenant="tenant-a")
    with api.client("a") as c:
        r = c.get(f"/v1/artifacts/{art.id}")
        assert r.status_code == 307
        assert r.headers["cache-control"] == "no-store"
        location = r.headers["location"]
        assert "X-Amz-Signature" in location or "Signature" in location
        assert httpx.get(location).content == b"from s3"
    with api.client("b") as c:
        assert c.get(f"/v1/artifacts/{art.id}").status_code == 404


def _new_job(tenant: str) -> Any:
    from treadle.core.job import NewJob

    return NewJob(task="make_files", payload={}, tenant=tenant)
