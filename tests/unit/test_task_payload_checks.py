"""Task.new_job's payload checks (ADR 0027): decided without ``Signature.bind`` when the
signature allows it, yet refusing exactly what ``bind`` refuses, with its message; the
size limit measured on the one encoding the store writes."""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from treadle import Treadle
from treadle.core.errors import InvalidInput
from treadle.task import MAX_PAYLOAD_BYTES, _KeywordBinding


def f_plain(a: int, b: int = 2) -> None: ...
def f_kwonly(a: int, *, c: int, d: int = 0) -> None: ...
def f_varkw(a: int, **kw: Any) -> None: ...
def f_varargs(*args: Any, x: int = 1) -> None: ...
def f_all(a: int, /, b: int, *args: Any, c: int, **kw: Any) -> None: ...
def f_none() -> None: ...


SIGNATURES: list[Callable[..., None]] = [f_plain, f_kwonly, f_varkw, f_varargs, f_all, f_none]
KEYS = ["a", "b", "c", "d", "x", "args", "kw", "other"]


@pytest.mark.parametrize("fn", SIGNATURES, ids=lambda f: f.__name__)
def test_the_fast_check_accepts_only_what_bind_accepts(fn: Callable[..., None]) -> None:
    sig = inspect.signature(fn)
    binding = _KeywordBinding.of(sig)
    for n in range(4):
        for keys in itertools.combinations(KEYS, n):
            payload = dict.fromkeys(keys, 1)
            try:
                sig.bind(**payload)
                binds = True
            except TypeError:
                binds = False
            if binding is None:  # positional-only parameters: always bind()
                assert fn is f_all
                continue
            assert binding.accepts(payload) == binds, (fn.__name__, keys)


@pytest.fixture
def app(tmp_path: Any) -> Any:
    app = Treadle(f"sqlite:///{tmp_path}/t.db")

    @app.task(name="t")
    def t(a: int, b: int = 2) -> None: ...

    @app.task(name="keyed", concurrency=("{a}", 1))
    def keyed(a: Any) -> None: ...

    yield app
    app.close()


def test_a_mismatched_payload_is_refused_with_binds_message(app: Treadle) -> None:
    with pytest.raises(InvalidInput, match="payload does not match task 't': missing a "
                       "required argument: 'a'"):
        app.get_task("t").new_job({"b": 1})
    with pytest.raises(InvalidInput, match="got an unexpected keyword argument 'z'"):
        app.get_task("t").new_job({"a": 1, "z": 1})


def test_the_size_limit_counts_utf8_bytes_of_the_stored_json(app: Treadle) -> None:
    task = app.get_task("t")
    room = MAX_PAYLOAD_BYTES - len('{"a":""}')
    assert task.new_job({"a": "x" * room}).payload_json == '{"a":"' + "x" * room + '"}'
    with pytest.raises(InvalidInput, match=f"payload is {MAX_PAYLOAD_BYTES + 1} bytes; the "
                       f"limit is {MAX_PAYLOAD_BYTES}"):
        task.new_job({"a": "x" * (room + 1)})
    # "é" is one character but two bytes.
    with pytest.raises(InvalidInput, match=f"payload is {MAX_PAYLOAD_BYTES + 1} bytes"):
        task.new_job({"a": "x" * (room - 1) + "é"})


def test_a_bad_payload_is_refused_before_its_flow_control_key_is_computed(
    app: Treadle,
) -> None:
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(InvalidInput, match="nesting deeper than"):
        app.get_task("keyed").new_job({"a": deep})
    assert app.get_task("keyed").new_job({"a": "x"}).concurrency_key == "x"
