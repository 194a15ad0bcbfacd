"""Hostile tasks for the security tests, loaded in-process and by real `treadle worker`
processes (``--app tests.security.app:app``)."""

from __future__ import annotations

import os
import time
from typing import Any

from treadle import Continue, JobContext, Treadle


class HostileStr(Exception):
    """An exception whose ``__str__`` (and ``__repr__``) raise."""

    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def register(app: Treadle) -> Treadle:
    @app.task(name="give", retries=0)
    def give(value: Any = None) -> Any:
        return value

    @app.task(name="lone_surrogate", retries=0)
    def lone_surrogate() -> str:
        return "\ud800"

    @app.task(name="deep_result", retries=0)
    def deep_result(depth: int) -> Any:
        value: Any = []
        for _ in range(depth):
            value = [value]
        return value

    @app.task(name="huge_result", retries=0)
    def huge_result(mb: int) -> str:
        return "x" * (mb << 20)

    @app.task(name="weird_result", retries=0)
    def weird_result(kind: str) -> Any:
        return {
            "nan": float("nan"),
            "inf": [float("inf")],
            "bigint": 2**5000,
            "intkey": {1: "one"},
            "bytes": b"\xff\x00",
            "nul": {"a\x00b": 1},
        }[kind]

    @app.task(name="say", retries=0, pass_context=True)
    def say(line: str, ctx: JobContext) -> str:
        ctx.log(line)
        return "said"

    @app.task(name="say_raw", retries=0, pass_context=True)
    def say_raw(ctx: JobContext) -> str:
        for line in ("\ud800 lone", "nul \x00 here", "pair \ud83d\ude00", "x" * 100_000):
            ctx.log(line)
        return "said"

    @app.task(name="raise_hostile", retries=0)
    def raise_hostile() -> None:
        raise HostileStr()

    @app.task(name="raise_weird", retries=0)
    def raise_weird() -> None:
        from treadle import Permanent

        deep: Any = []
        for _ in range(5000):
            deep = [deep]
        raise Permanent("bad \ud800 \x00", detail={1: float("nan"), "deep": deep,
                                                    "obj": object(), "big": "y" * 1_000_000})

    @app.task(name="spin", retries=0, timeout=0.5)
    def spin() -> None:
        while True:  # pure Python: a hard stop interrupts it
            time.sleep(0.001)

    @app.task(name="async_surrogate", retries=0)
    async def async_surrogate() -> str:
        return "\ud800"

    @app.task(name="async_hostile", retries=0)
    async def async_hostile() -> None:
        raise HostileStr()

    @app.task(name="continue_bad", retries=0)
    def continue_bad(step: int = 0) -> None:
        raise Continue({"step": "\ud800"})

    return app


app = register(Treadle(os.environ.get("TREADLE_DATABASE_URL", "sqlite:///treadle-sec.db")))
