from hypothesis import given
from hypothesis import strategies as st

from treadle.core.errors import IllegalTransition
from treadle.core.lifecycle import TERMINAL, TRANSITIONS, JobStatus, check_transition, is_legal

statuses = st.sampled_from(list(JobStatus))


def test_happy_path_transitions_are_legal() -> None:
    check_transition(JobStatus.QUEUED, JobStatus.RUNNING, "claimed")
    check_transition(JobStatus.RUNNING, JobStatus.SUCCEEDED, "completed")
    check_transition(JobStatus.RUNNING, JobStatus.QUEUED, "lease_expired")


def test_succeeded_is_final() -> None:
    for to in JobStatus:
        assert not is_legal(JobStatus.SUCCEEDED, to)


def test_illegal_transition_raises_with_structured_detail() -> None:
    try:
        check_transition(JobStatus.QUEUED, JobStatus.SUCCEEDED)
    except IllegalTransition as exc:
        assert exc.detail == {"from": "queued", "to": "succeeded", "reason": None}
    else:
        raise AssertionError("expected IllegalTransition")


def test_reason_must_match_the_transition() -> None:
    assert is_legal(JobStatus.RUNNING, JobStatus.QUEUED, "retry")
    assert not is_legal(JobStatus.RUNNING, JobStatus.QUEUED, "claimed")


@given(statuses, statuses)
def test_check_transition_agrees_with_table(a: JobStatus, b: JobStatus) -> None:
    legal = (a, b) in TRANSITIONS
    try:
        check_transition(a, b)
    except IllegalTransition:
        assert not legal
    else:
        assert legal


@given(st.lists(statuses, min_size=1, max_size=30))
def test_any_walk_through_legal_moves_only_leaves_terminal_by_manual_retry(
    path: list[JobStatus],
) -> None:
    """Follow only legal moves; a terminal state is left only for a manual retry."""
    cur = JobStatus.QUEUED
    for nxt in path:
        if not is_legal(cur, nxt):
            continue
        if cur in TERMINAL:
            assert nxt is JobStatus.QUEUED and is_legal(cur, nxt, "manual_retry")
            assert cur is not JobStatus.SUCCEEDED
        cur = nxt


def test_every_state_is_reachable_from_queued() -> None:
    seen = {JobStatus.QUEUED}
    frontier = [JobStatus.QUEUED]
    while frontier:
        a = frontier.pop()
        for (x, y) in TRANSITIONS:
            if x is a and y not in seen:
                seen.add(y)
                frontier.append(y)
    assert seen == set(JobStatus)


def test_waiting_is_entered_by_an_attempt_and_left_by_a_wake_or_a_cancel() -> None:
    check_transition(JobStatus.RUNNING, JobStatus.WAITING, "waiting")
    check_transition(JobStatus.WAITING, JobStatus.QUEUED, "woken")
    check_transition(JobStatus.WAITING, JobStatus.CANCELLED, "cancelled")
    assert not JobStatus.WAITING.is_terminal
    assert not is_legal(JobStatus.QUEUED, JobStatus.WAITING)  # only a running attempt waits
    assert not is_legal(JobStatus.WAITING, JobStatus.RUNNING)  # woken jobs are claimed again
    assert not is_legal(JobStatus.WAITING, JobStatus.SUCCEEDED)
