"""Dynamic workers through the remote client (ADR 0020): register, read, list and run
over HTTP, and a worker's ``env.emit`` items followed with ``handle.stream()``; real
sandboxes, a real worker, SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.api.conftest import Api
from tests.e2e.api.test_workers_http import dapi, sandboxes  # noqa: F401  (fixtures)
from tests.support.aio import run_async
from treadle.client import AsyncClient, Client
from treadle.core.errors import InvalidInput
from treadle.core.lifecycle import JobStatus
from treadle.dynamic import WorkerNotFound

JS_EMITTER = (
    "async function handler(input, env) {\n"
    "  for (let i = 0; i < input.n; i++) await env.emit('row', {i});\n"
    "  console.log('emitted', input.n);\n  return {rows: input.n};\n}"
)
PY_EMITTER = (
    "def handler(input, env):\n"
    "    for i in range(input['n']):\n        env.emit('row', {'i': i})\n"
    "    return {'rows': input['n']}"
)


def test_workers_and_their_streams_through_the_client(dapi: Api) -> None:  # noqa: F811
    with Client(dapi.url, dapi.keys["a"]) as a, Client(dapi.url, dapi.keys["b"]) as b:
        js = a.register_dynamic_worker(JS_EMITTER, "javascript", name="rows-js")
        again = a.register_dynamic_worker(JS_EMITTER, "javascript", name="rows-js")
        py = a.register_dynamic_worker(PY_EMITTER, "python")
        assert again.id == js.id and js.tenant == "tenant-a" and js.language == "javascript"
        assert a.get_dynamic_worker(js.id).code == JS_EMITTER
        assert {w.id for w in a.list_dynamic_workers()} == {js.id, py.id}
        assert b.list_dynamic_workers() == []
        with pytest.raises(WorkerNotFound) as missing:
            b.get_dynamic_worker(js.id)
        assert missing.value.detail["type"] == "urn:treadle:problem:worker-not-found"
        with pytest.raises(WorkerNotFound):
            b.run_dynamic_worker(js.id, {"n": 1})
        with pytest.raises(InvalidInput):
            a.register_dynamic_worker("x", "cobol")  # type: ignore[arg-type]

        for worker in (js, py):
            h = a.run_dynamic_worker(worker.id, {"n": 40}, sync=False)
            assert h.created and not h.job.is_finished
            rows = [ev.item.data["i"] for ev in h.stream()
                    if ev.item is not None and ev.item.kind == "row"]
            assert rows == list(range(40))
            assert h.wait(20).result == {"rows": 40}

        done = a.run_dynamic_worker(py.id, {"n": 2}, wait=15)  # sync: answered with the result
        assert done.job.status is JobStatus.SUCCEEDED and done.job.result == {"rows": 2}
        inline = a.run_code("def handler(i, env):\n    return i * 3", "python", 14, wait=15)
        assert inline.job.result == 42


def test_async_workers(dapi: Api) -> None:  # noqa: F811
    async def main() -> None:
        async with AsyncClient(dapi.url, dapi.keys["a"]) as c:
            w = await c.register_dynamic_worker(JS_EMITTER, "javascript")
            h = await c.run_dynamic_worker(w.id, {"n": 5}, sync=False)
            kinds = [ev.item.kind async for ev in h.stream() if ev.item is not None]
            assert kinds.count("row") == 5
            assert (await h.wait(20)).result == {"rows": 5}
            assert [x.id for x in await c.list_dynamic_workers()] == [w.id]

    run_async(main())


def test_treadle_dynamic_through_the_api(dapi: Api, tmp_path: Path) -> None:  # noqa: F811
    import json
    import subprocess

    from tests.e2e.api.conftest import treadle_cli

    source = tmp_path / "rows.py"
    source.write_text(PY_EMITTER)

    def cli(*args: str, key: str = "a") -> tuple[int, str, str]:
        proc = treadle_cli("dynamic", *args, "--url", dapi.url, "--key", dapi.keys[key],
                           env={"TREADLE_DATABASE_URL": "sqlite:////nonexistent-dir/x.db"},
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = proc.communicate(timeout=60)
        return proc.returncode, out, err

    code, out, err = cli("register", str(source), "--name", "rows", "--timeout", "5")
    assert code == 0, err
    wid = out.strip()
    code, out, err = cli("run", wid, "--input", '{"n": 3}', "--json")
    assert code == 0, err
    assert json.loads(out)["result"] == {"rows": 3}
    code, out, err = cli("list", "--json")
    assert code == 0, err
    assert [(w["id"], w["name"], w["limits"]["timeout"]) for w in json.loads(out)] == [
        (wid, "rows", 5.0)]
    code, out, err = cli("show", wid)
    assert code == 0 and PY_EMITTER in out, err
    code, out, err = cli("show", wid, key="b")  # another tenant's worker
    assert code != 0 and "not found" in err
