"""The job page's artifacts in a real browser: thumbnails shown, MP4 playable, downloads."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.ui.conftest import Server, login, shot
from treadle.core.job import NewJob
from treadle.media.probe import probe
from treadle.media.stills import thumbnail
from treadle.media.synth import make_video


def _job_with_files(server: Server, tmp: Path, tenant: str) -> tuple[int, dict[str, int]]:
    app = server.treadle
    job = app.store.enqueue([NewJob(task="ui.echo", payload={"message": "m"},
                                    tenant=tenant)])[0].job.id
    clip = make_video(tmp / "clip.mp4", seconds=2, width=320, height=240, faststart=True)
    info = probe(clip)
    jpg = thumbnail(clip, info, 0.5, tmp / "t.jpg")
    ids = {
        "thumb": app.artifacts.put(job, "thumbnails/thumb_00.jpg", jpg, tenant=tenant).id,
        "video": app.artifacts.put(job, "renditions/240p.mp4", clip, tenant=tenant,
                                   meta=info.summary()).id,
        "text": app.artifacts.put(job, "notes/<script>alert(1)</script>.txt", b"hello",
                                  tenant=tenant).id,
    }
    return job, ids


def test_job_page_shows_previews_and_downloads(page: Page, server: Server,
                                              tmp_path: Path) -> None:
    job, ids = _job_with_files(server, tmp_path, "acme")
    login(page, server)
    page.goto(f"{server.url}/jobs/{job}")
    section = page.get_by_test_id("artifacts")
    expect(section).to_contain_text("renditions/240p.mp4")
    expect(section).to_contain_text("2.0 s")
    expect(section).to_contain_text("320x240")
    expect(section).to_contain_text("<script>alert(1)</script>.txt")  # shown as text
    img = page.get_by_test_id("preview-image")
    expect(img).to_be_visible()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=preview-image]').naturalWidth === 320")
    video = page.get_by_test_id("preview-video")
    expect(video).to_be_visible()
    # Metadata loaded (duration known) or, in a browser built without H.264, a clean
    # "not supported" (MEDIA_ERR_SRC_NOT_SUPPORTED) rather than a network error.
    state = page.wait_for_function(
        "() => { const v = document.querySelector('[data-testid=preview-video]');"
        " return v.readyState >= 1 ? 'ok' : (v.error ? 'err' + v.error.code : false); }",
        timeout=15_000).json_value()
    assert state in ("ok", "err4"), state
    assert len(page.get_by_test_id("download").all()) == 3
    shot(page, "20-job-artifacts")
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    r = httpx.get(f"{server.url}/ui/artifacts/{ids['video']}", cookies=cookies,
                  headers={"Range": "bytes=0-99"})
    assert r.status_code == 206 and len(r.content) == 100


def test_other_tenants_artifacts_are_not_served(page: Page, server: Server,
                                                tmp_path: Path) -> None:
    _, ids = _job_with_files(server, tmp_path, "someone-else")
    login(page, server, key=server.tenant_key)  # tenant acme
    for artifact_id in ids.values():
        resp = page.goto(f"{server.url}/ui/artifacts/{artifact_id}")
        assert resp is not None and resp.status == 404
    resp = page.goto(f"{server.url}/ui/artifacts/99999999999999999999")
    assert resp is not None and resp.status == 404
