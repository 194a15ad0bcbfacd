"""The CLI with ``--url/--key`` (or TREADLE_URL / TREADLE_API_KEY): the real command in a
subprocess against a real server; the database URL in its environment is unusable, so
anything that reached for the database instead of the API would fail."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from tests.e2e.api.conftest import Api, api_worker, treadle_cli
from treadle.client import Client
from treadle.context import JobContext

NO_DB = {"TREADLE_DATABASE_URL": "sqlite:////nonexistent-dir/never.db"}


def _cli(api: Api, *args: str, key: str = "a", env: dict[str, str] | None = None,
         via_env: bool = False) -> tuple[int, str, str]:
    raw = api.keys.get(key, key)
    flags = [] if via_env else ["--url", api.url, "--key", raw]
    extra = {"TREADLE_URL": api.url, "TREADLE_API_KEY": raw} if via_env else {}
    proc = treadle_cli(*args, *flags, env={**NO_DB, **extra, **(env or {})},
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def test_jobs_commands_through_the_api(api: Api) -> None:
    @api.treadle.task(name="ticker", retries=0, pass_context=True)
    def ticker(n: int, ctx: JobContext) -> int:
        for i in range(n):
            ctx.emit("tick", {"i": i})
        return n

    with api_worker(api.treadle):
        code, out, err = _cli(api, "submit", "add", "--payload", '{"a": 20, "b": 22}',
                              "--wait", "--json")
        assert code == 0, err
        [job] = json.loads(out)
        assert job["result"] == 42 and job["tenant"] == "tenant-a"

        code, out, err = _cli(api, "jobs", "show", str(job["id"]), "--json", via_env=True)
        assert code == 0, err
        shown = json.loads(out)
        assert shown["id"] == job["id"] and "completed" in [e["reason"] for e in shown["events"]]

        code, out, err = _cli(api, "submit", "ticker", "--payload", '{"n": 5}', "--json")
        assert code == 0, err
        ticker_id = json.loads(out)[0]["id"]
        code, out, err = _cli(api, "jobs", "watch", str(ticker_id), "--json")
        assert code == 0, err
        lines = [json.loads(line) for line in out.splitlines()]
        assert [ln["item"]["data"]["i"] for ln in lines if ln.get("item")] == list(range(5))
        assert lines[-1]["event"] == "end" and lines[-1]["job"]["result"] == 5

        code, out, err = _cli(api, "jobs", "list", "--json", "--status", "succeeded")
        assert code == 0, err
        assert {j["id"] for j in json.loads(out)} == {job["id"], ticker_id}
        code, out, err = _cli(api, "jobs", "list", "--json", key="b")  # another tenant
        assert code == 0, err
        assert json.loads(out) == []

        code, out, err = _cli(api, "jobs", "show", str(job["id"]), key="b")
        assert code != 0 and "not found" in err

        code, out, err = _cli(api, "jobs", "retry", str(job["id"]))
        assert code != 0 and "only failed or cancelled jobs can be retried" in err


def test_cancel_and_retry_through_the_api(api: Api) -> None:
    with Client(api.url, api.keys["a"]) as c:  # no worker: the job stays put
        held: Any = c.submit("noop", delay=3600)
    code, out, err = _cli(api, "jobs", "cancel", str(held.id), via_env=True)
    assert code == 0 and "cancelled" in out, err
    code, out, err = _cli(api, "jobs", "retry", str(held.id))
    assert code == 0 and "queued" in out, err
    assert api.treadle.get_job(held.id).status.value == "queued"


def test_refusals_are_messages_and_nonzero_exits(api: Api) -> None:
    code, _, err = _cli(api, "jobs", "list", key="wrong-key")
    assert code != 0 and "error:" in err and "Traceback" not in err
    code, _, err = _cli(api, "submit", "no-such-task")
    assert code != 0 and "unknown task" in err
    code, _, err = _cli(api, "submit", "noop", key="a_read")
    assert code != 0 and "scope" in err
    code, _, err = _cli(api, "jobs", "show", "1", env={"TREADLE_URL": "ftp://nowhere"},
                        via_env=True)
    assert code != 0 and "http(s)://" in err


def test_release_and_discard_through_the_api(api: Api) -> None:
    @api.treadle.task(name="fragile", max_crashes=1)
    def fragile() -> None:
        return None

    def quarantined() -> int:
        with Client(api.url, api.keys["a"]) as c:
            job: Any = c.submit("fragile")
        # A worker claims it and dies at once (it never heartbeats): one crash is enough.
        api.treadle.store.claim(queues=None, worker="dies", limit=1, lease_seconds=0.01)
        while not api.treadle.store.reap().quarantined:
            time.sleep(0.01)
        return int(job.id)

    first, second = quarantined(), quarantined()
    code, out, err = _cli(api, "jobs", "release", str(first))
    assert code == 0 and "queued" in out, err
    code, out, err = _cli(api, "jobs", "discard", str(second), via_env=True)
    assert code == 0 and "failed" in out, err
    code, out, err = _cli(api, "jobs", "discard", str(first))
    assert code != 0 and "only quarantined jobs can be discarded" in err
    code, out, err = _cli(api, "jobs", "release", str(second), key="b")  # another tenant
    assert code != 0 and "not found" in err
    assert api.treadle.get_job(first).status.value == "queued"
    with Client(api.url, api.keys["a"]) as c:
        gone = c.get_job(second)
        assert gone.status.value == "failed" and len(gone.crashes) == 1
        assert gone.crashes[0].worker == "dies" and gone.max_crashes == 1
