"""ProgressState: movement, stall limits scoped to a block, the heartbeat's hand-off."""

from __future__ import annotations

import pytest

from treadle.core.clock import ManualClock
from treadle.core.errors import InvalidInput
from treadle.core.progress import ProgressState


def test_stall_only_inside_a_watched_block_and_reset_by_movement() -> None:
    clock = ManualClock()
    p = ProgressState(clock)
    clock.advance(100)
    assert p.stalled() is None  # nothing watched
    with p.watch(10):
        p.update(1, 5)
        clock.advance(9.9)
        assert p.stalled() is None
        p.update(1, 5, "same count: no movement")
        clock.advance(0.2)
        assert p.stalled() is not None and "at 1/5" in (p.stalled() or "")
        p.update(2, 5)
        assert p.stalled() is None
        with p.watch(None):  # a stretch with no detection
            clock.advance(50)
            assert p.stalled() is None
        clock.advance(10.1)
        assert p.stalled() is not None
    assert p.stalled() is None


def test_the_heartbeat_takes_each_value_once() -> None:
    p = ProgressState(ManualClock())
    assert p.take_unreported() is None
    p.update(1, 10)
    p.update(2, 10)
    v = p.take_unreported()
    assert v is not None and (v.done, v.total) == (2, 10)
    assert p.take_unreported() is None
    p.update(3, 10, reported=True)  # already streamed live
    assert p.take_unreported() is None


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), True, "3"])
def test_bad_values_refused(bad: object) -> None:
    p = ProgressState(ManualClock())
    with pytest.raises(InvalidInput):
        p.update(bad, 1)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput), p.watch(bad):  # type: ignore[arg-type]
        pass


def test_hostile_messages_are_cleaned_and_capped() -> None:
    p = ProgressState(ManualClock())
    p.update(1, 2, "bad \udc80 nul \x00 " + "x" * 100_000)
    v = p.value
    assert v is not None and v.message is not None
    assert v.message.endswith("more characters not stored]") and len(v.message) < 1100
    assert "\udc80" not in v.message and "\x00" not in v.message
    v.message.encode("utf-8")  # storable
