"""Every dynamic run is a durable job: recorded, logged, classified, tenant-scoped."""

from __future__ import annotations

import pytest

from tests.integration.dynamic.conftest import Dyn
from treadle import Treadle
from treadle.core.errors import ErrorClass, InvalidInput
from treadle.core.job import JobKind, NewJob
from treadle.core.lifecycle import JobStatus
from treadle.dynamic import DynamicWorkers, WorkerNotFound
from treadle.sandbox import InvalidLimits

LANGS = ("javascript", "python")
GREET = {
    "javascript": 'async function handler(input, env) {\n'
                  '  console.log("hello", input.name);\n  console.log("second line");\n'
                  '  return {greeting: "hi " + input.name}\n}',
    "python": 'def handler(input, env):\n    print("hello", input["name"])\n'
              '    print("second line")\n    return {"greeting": "hi " + input["name"]}',
}
COUNTER = {
    "javascript": "let n = 0; function handler() { n += 1; return n }",
    "python": "n = 0\ndef handler(input, env):\n    global n\n    n += 1\n    return n",
}
KV_COUNTER = {
    "javascript": 'async function handler(input, env) {\n'
                  '  const n = Number((await env.kv.get("n")) || 0) + 1;\n'
                  '  await env.kv.put("n", String(n));\n  return n\n}',
    "python": 'def handler(input, env):\n    n = int(env.kv.get("n") or 0) + 1\n'
              '    env.kv.put("n", str(n))\n    return n',
}
FAST = {"timeout": 3, "cpu_seconds": 3, "memory_mb": 128}


@pytest.mark.parametrize("lang", LANGS)
def test_a_run_is_a_recorded_job_with_console_logs(dyn: Dyn, lang: str) -> None:
    w = dyn.workers.register(GREET[lang], lang, FAST, name="greeter", tenant=dyn.tenant)
    handle = dyn.workers.run(w.id, {"name": "ada"}, tenant=dyn.tenant)
    assert handle.job.kind is JobKind.CODE and handle.job.status is JobStatus.QUEUED
    job = dyn.finished(handle.id)
    assert job.status is JobStatus.SUCCEEDED, job.error
    assert job.result == {"greeting": "hi ada"}
    assert job.task == f"dynamic:{w.id}" and job.tenant == dyn.tenant
    assert job.payload == {"worker_id": w.id, "input": {"name": "ada"}, "mode": "load"}
    assert job.timeout is not None and job.timeout > 3  # sandbox limit + slack
    events = [(e.from_status, e.to_status) for e in dyn.app.job_events(job.id)]
    assert events == [(None, JobStatus.QUEUED), (JobStatus.QUEUED, JobStatus.RUNNING),
                      (JobStatus.RUNNING, JobStatus.SUCCEEDED)]
    logs = dyn.app.job_logs(job.id)
    assert [(entry.attempt, entry.message) for entry in logs] == [
        (1, "hello ada"), (1, "second line")]


def test_ids_are_content_hashes_and_registration_is_idempotent(dyn: Dyn) -> None:
    code, t = GREET["python"], dyn.tenant
    a = dyn.workers.register(code, "python", FAST, tenant=t)
    again = dyn.workers.register(code, "py", dict(FAST), name="relabelled", tenant=t)
    assert again.id == a.id and again.name == "relabelled"
    assert [w.id for w in dyn.workers.list(t)] == [a.id]
    assert dyn.workers.register(code + "\n", "python", FAST, tenant=t).id != a.id
    assert dyn.workers.register(code, "python", {**FAST, "timeout": 4}, tenant=t).id != a.id
    assert dyn.workers.register(code, "python", FAST, kv=True, tenant=t).id != a.id
    assert len(dyn.workers.list(t)) == 4
    stored = dyn.workers.get(a.id, tenant=t)
    assert stored.code == code and stored.limits.timeout == 3 and stored.language == "python"
    # Another tenant neither sees nor runs it, and no job is created for the attempt.
    other = f"{t}-other"
    with pytest.raises(WorkerNotFound):
        dyn.workers.get(a.id, tenant=other)
    before = len(dyn.app.list_jobs())
    with pytest.raises(WorkerNotFound):
        dyn.workers.run(a.id, {}, tenant=other)
    assert len(dyn.app.list_jobs()) == before
    assert dyn.workers.list(other) == []
    # The same code registered by the other tenant has the same id but its own row.
    assert dyn.workers.register(code, "python", FAST, tenant=other).id == a.id


def test_bad_requests_are_refused_before_anything_is_enqueued(dyn: Dyn) -> None:
    w = dyn.workers.register(GREET["python"], "python", FAST, tenant=dyn.tenant)
    with pytest.raises(InvalidLimits):
        dyn.workers.run(w.id, {}, tenant=dyn.tenant, limits={"timeout": 0})
    with pytest.raises(InvalidLimits):
        dyn.workers.run(w.id, {}, tenant=dyn.tenant, limits={"walltime": 1})
    with pytest.raises(InvalidInput):
        dyn.workers.run(w.id, {}, "warm", tenant=dyn.tenant)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        dyn.workers.run(w.id, {"x": float("nan")}, tenant=dyn.tenant)
    with pytest.raises(InvalidInput):
        dyn.workers.register("", "python", tenant=dyn.tenant)
    with pytest.raises(InvalidInput):
        dyn.workers.register("x", "ruby", tenant=dyn.tenant)
    assert dyn.app.list_jobs() == []


@pytest.mark.parametrize("lang", LANGS)
def test_load_is_fresh_get_is_warm(dyn: Dyn, lang: str) -> None:
    w = dyn.workers.register(COUNTER[lang], lang, FAST, tenant=dyn.tenant)

    def run(mode: str) -> object:
        job = dyn.finished(dyn.workers.run(w.id, None, mode, tenant=dyn.tenant).id)  # type: ignore[arg-type]
        assert job.status is JobStatus.SUCCEEDED, job.error
        return job.result

    assert [run("load") for _ in range(3)] == [1, 1, 1]
    assert [run("get") for _ in range(3)] == [1, 2, 3]
    assert run("load") == 1  # a load never sees the warm instance's state


def test_hostile_runs_fail_classified_and_the_worker_serves_the_next_job(dyn: Dyn) -> None:
    t = dyn.tenant
    sock = dyn.workers.register(
        "import socket\ndef handler(input, env):\n    socket.socket()\n    return 1",
        "python", FAST, tenant=t)
    loop = dyn.workers.register("function handler() { for (;;) {} }", "javascript",
                                {"timeout": 1, "cpu_seconds": 5}, tenant=t)
    boom = dyn.workers.register("def handler(input, env):\n    raise ValueError('nope')",
                                "python", FAST, tenant=t)
    ok = dyn.workers.register(GREET["javascript"], "javascript", FAST, tenant=t)
    expected = [(sock, ErrorClass.SANDBOX_VIOLATION), (loop, ErrorClass.TIMEOUT),
                (boom, ErrorClass.PERMANENT)]
    for worker, error_class in expected:
        job = dyn.finished(dyn.workers.run(worker.id, {}, tenant=t).id)
        assert job.status is JobStatus.FAILED
        assert job.error is not None and job.error.error_class is error_class, job.error
        assert job.attempt == 1 and job.max_attempts == 3  # had retries left; not retried
        reasons = [e.reason for e in dyn.app.job_events(job.id)]
        assert reasons.count("claimed") == 1
    assert "nope" in (job.error.message if job.error else "")
    after = dyn.finished(dyn.workers.run(ok.id, {"name": "bob"}, tenant=t).id)
    assert after.status is JobStatus.SUCCEEDED and after.result == {"greeting": "hi bob"}


def test_a_job_naming_a_missing_worker_fails_as_invalid_input(dyn: Dyn) -> None:
    # Enqueued behind the registry's back (e.g. by an old client): the executor refuses it.
    job = NewJob(task="dynamic:dw_missing", kind=JobKind.CODE, tenant=dyn.tenant,
                 payload={"worker_id": "dw_missing", "input": 1, "mode": "load"}, max_attempts=3)
    bad_payload = NewJob(task="dynamic:x", kind=JobKind.CODE, tenant=dyn.tenant,
                         payload={"mode": "load"}, max_attempts=3)
    for handle in dyn.app.enqueue([job, bad_payload]):
        done = dyn.finished(handle.id)
        assert done.status is JobStatus.FAILED and done.attempt == 1
        assert done.error is not None and done.error.error_class is ErrorClass.INVALID_INPUT


@pytest.mark.parametrize("lang", LANGS)
def test_kv_persists_across_runs_and_is_scoped_to_the_tenant(dyn: Dyn, lang: str) -> None:
    a, b = dyn.tenant, f"{dyn.tenant}-b"
    wa = dyn.workers.register(KV_COUNTER[lang], lang, FAST, kv=True, tenant=a)
    wb = dyn.workers.register(KV_COUNTER[lang], lang, FAST, kv=True, tenant=b)

    def run(tenant: str, wid: str) -> object:
        job = dyn.finished(dyn.workers.run(wid, None, tenant=tenant).id)
        assert job.status is JobStatus.SUCCEEDED, job.error
        return job.result

    # `load` runs start fresh each time: the count lives in the database, not the sandbox.
    assert [run(a, wa.id), run(a, wa.id), run(b, wb.id), run(a, wa.id)] == [1, 2, 1, 3]
    # Durable: a new app on the same database reads what the runs wrote.
    with Treadle(dyn.app.url) as fresh:
        repo = fresh.use(DynamicWorkers()).registry.repo
        assert repo.kv_get(a, "n") == "3" and repo.kv_get(b, "n") == "1"
        assert repo.kv_get(f"{a}-c", "n") is None


def test_without_the_kv_binding_env_kv_does_not_exist(dyn: Dyn) -> None:
    w = dyn.workers.register(KV_COUNTER["python"], "python", FAST, tenant=dyn.tenant)
    job = dyn.finished(dyn.workers.run(w.id, None, tenant=dyn.tenant).id)
    assert job.status is JobStatus.FAILED and job.error is not None
    assert job.error.error_class is ErrorClass.PERMANENT
    assert job.error.message == "AttributeError: '_Env' object has no attribute 'kv'"


def test_run_inline_is_a_recorded_one_off_load(dyn: Dyn) -> None:
    code = "async function handler(input) { console.log('inline'); return input * 2 }"
    handle = dyn.workers.run_inline(code, "javascript", 21, {"timeout": 2}, tenant=dyn.tenant,
                                    wait=20)
    job = handle.job
    assert job.status is JobStatus.SUCCEEDED and job.result == 42
    assert job.payload["mode"] == "load"
    stored = dyn.workers.get(job.payload["worker_id"], tenant=dyn.tenant)
    assert stored.code == code and stored.limits.timeout == 2
    assert [entry.message for entry in dyn.app.job_logs(job.id)] == ["inline"]
    # The sync window: a run that cannot finish in time hands back the queued job.
    slow = dyn.workers.run_inline("function handler() { for(;;){} }", "javascript", None,
                                  {"timeout": 1}, tenant=dyn.tenant, wait=0.05)
    assert not slow.job.is_finished
    stopped = dyn.finished(slow.id)
    assert stopped.status is JobStatus.FAILED and stopped.error is not None
    assert stopped.error.error_class is ErrorClass.TIMEOUT
    assert stopped.error.message == "run exceeded its wall-clock limit of 1s"


def test_per_run_limit_overrides_apply_to_that_run_only(dyn: Dyn) -> None:
    code = "import time\ndef handler(input, env):\n    time.sleep(input)\n    return input"
    w = dyn.workers.register(code, "python", FAST, tenant=dyn.tenant)
    short = dyn.finished(dyn.workers.run(w.id, 0.6, tenant=dyn.tenant,
                                         limits={"timeout": 0.3}).id)
    assert short.error is not None and short.error.error_class is ErrorClass.TIMEOUT
    assert short.payload["limits"] == {"timeout": 0.3}
    fine = dyn.finished(dyn.workers.run(w.id, 0.6, tenant=dyn.tenant).id)
    assert fine.status is JobStatus.SUCCEEDED and fine.result == 0.6
