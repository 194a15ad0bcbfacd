from datetime import UTC, datetime

import pytest

from treadle.core.budget import Deadline
from treadle.core.errors import ConfigurationError, InvalidInput, Timeout
from treadle.core.job import NewJob
from treadle.core.lease import LeaseConfig, is_expired
from treadle.testing import ManualClock


def test_deadline_counts_down_with_the_injected_clock() -> None:
    clock = ManualClock()
    d = Deadline.after(10, clock)
    assert d.remaining() == 10
    clock.advance(4)
    assert d.remaining() == 6 and not d.expired
    clock.advance(6)
    assert d.expired
    with pytest.raises(Timeout):
        d.check()


def test_no_timeout_means_no_deadline() -> None:
    clock = ManualClock()
    d = Deadline.after(None, clock)
    clock.advance(1e9)
    assert not d.expired


def test_lease_heartbeats_renew_well_before_expiry() -> None:
    cfg = LeaseConfig(seconds=30)
    assert cfg.heartbeat_interval == 10
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert is_expired(cfg.expiry(now), cfg.expiry(now))
    assert not is_expired(cfg.expiry(now), now)


@pytest.mark.parametrize("seconds", [0, -1, 10**9])
def test_lease_length_is_validated(seconds: float) -> None:
    with pytest.raises(ConfigurationError):
        LeaseConfig(seconds=seconds)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"task": ""},
        {"task": "t", "queue": " padded "},
        {"task": "t", "payload": []},
        {"task": "t", "priority": 10**6},
        {"task": "t", "max_attempts": 0},
        {"task": "t", "timeout": -1},
        {"task": "t", "run_at": datetime(2030, 1, 1)},
    ],
)
def test_new_job_refuses_bad_input(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        NewJob(**kwargs)  # type: ignore[arg-type]
