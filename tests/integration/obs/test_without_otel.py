"""Treadle without the ``otel`` extra (ADR 0021): the core imports nothing of
OpenTelemetry and works unchanged; asking for traces names ``treadle[otel]``.

Each case runs in a fresh interpreter whose imports of OpenTelemetry fail, as they would
where the extra is not installed. The ``server`` extra's FastAPI depends on
``opentelemetry-api`` itself, so with the API the blocked part is what ``otel`` adds: the
SDK and the exporter."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
BLOCK = textwrap.dedent("""
    import importlib.abc, sys

    BLOCKED = {blocked!r}

    class NoOtel(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, NoOtel())
""")
ALL = ("opentelemetry",)
EXTRA = ("opentelemetry.sdk", "opentelemetry.exporter")


def _python(body: str, *args: str, blocked: tuple[str, ...] = EXTRA,
            ) -> subprocess.CompletedProcess[str]:
    code = BLOCK.format(blocked=blocked) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=120)


def test_jobs_run_with_usage_and_no_opentelemetry_anywhere(tmp_path: Path) -> None:
    done = _python("""
        import sys
        from treadle import Treadle
        from treadle.store.usage import UsageReader
        from treadle.testing import run_worker

        app = Treadle(f"sqlite:///{sys.argv[1]}/t.db")

        @app.task(name="add")
        def add(a: int, b: int) -> int:
            return a + b

        app.migrate()
        handle = app.defer("add", {"a": 1, "b": 2}, )
        with run_worker(app):
            assert handle.wait(30).result == 3
        assert app.get_job(handle.id).traceparent is None
        (row,) = UsageReader(app.store).attempts(handle.id)
        assert row["result_bytes"] == 1 and row["cpu_seconds"] is not None
        assert not [m for m in sys.modules if m.startswith("opentelemetry")]
        print("ok")
    """, str(tmp_path), blocked=ALL)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")


def test_the_api_serves_without_the_sdk(tmp_path: Path) -> None:
    done = _python("""
        import sys
        from fastapi.testclient import TestClient
        from treadle import Treadle
        from treadle.api import ApiConfig, create_app

        app = Treadle(f"sqlite:///{sys.argv[1]}/t.db")
        app.migrate()
        config = ApiConfig(admin_key="k" * 24)
        with TestClient(create_app(app, config)) as client:
            r = client.get("/v1/usage", headers={"Authorization": "Bearer " + "k" * 24})
            assert r.status_code == 200, r.text
        assert not [m for m in sys.modules if m.startswith("opentelemetry.sdk")]
        print("ok")
    """, str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")


def test_asking_for_traces_names_the_extra() -> None:
    done = _python("""
        from treadle.core.errors import MissingExtra
        from treadle.tracing import otel_tracing
        try:
            otel_tracing()
        except MissingExtra as exc:
            print(exc.message)
        else:
            raise SystemExit("no error")
    """)
    assert done.returncode == 0, done.stderr
    assert "treadle[otel]" in done.stdout


def test_the_cli_flag_without_the_extra_fails_clearly(tmp_path: Path) -> None:
    done = _python("""
        import sys
        from treadle.cli import main
        sys.argv = ["treadle", "worker", "--db", f"sqlite:///{sys.argv[1]}/t.db", "--otel",
                    "--burst"]
        main()
    """, str(tmp_path))
    assert done.returncode != 0
    assert "treadle[otel]" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
