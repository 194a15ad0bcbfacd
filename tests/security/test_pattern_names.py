"""Names checked against a ``^...$`` pattern with ``re.match``: ``$`` also matches before a
trailing newline, so ``"text/plain\\n"`` passed as a content type (echoed in the
``Content-Type`` of ``GET /v1/artifacts/{id}``, where a newline breaks the response) and
``"progress\\n"`` as a stream item's kind (sent by sandboxed code through ``env.emit``)."""

from __future__ import annotations

import pytest

from treadle.api.problems import Problem
from treadle.artifacts.names import check_content_type
from treadle.core.errors import InvalidInput
from treadle.dynamic.api import _checked_id
from treadle.streams.model import check_kind


@pytest.mark.parametrize("tail", ["\n", "\r\n"])
def test_a_content_type_with_a_line_break_is_refused(tail: str) -> None:
    with pytest.raises(InvalidInput, match="content_type"):
        check_content_type("text/plain" + tail, "a.txt")
    assert check_content_type("text/plain", "a.txt") == "text/plain"


@pytest.mark.parametrize("tail", ["\n", "\r\n"])
def test_an_emitted_kind_with_a_line_break_is_refused(tail: str) -> None:
    with pytest.raises(InvalidInput, match="kind"):
        check_kind("rows" + tail)
    assert check_kind("rows") == "rows"


def test_a_dynamic_worker_id_with_a_line_break_is_not_looked_up() -> None:
    wid = "dw_" + "0" * 24
    assert _checked_id(wid) == wid
    with pytest.raises(Problem) as refused:
        _checked_id(wid + "\n")
    assert refused.value.status == 404
