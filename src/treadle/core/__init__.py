"""Treadle's pure core: no I/O, no database, no web framework."""

from treadle.core.budget import Deadline
from treadle.core.classify import classify
from treadle.core.clock import Clock, ManualClock, SystemClock
from treadle.core.errors import ErrorClass, ErrorInfo
from treadle.core.job import Enqueued, Job, JobEvent, JobFilter, JobKind, JobLog, NewJob, QueueInfo
from treadle.core.lease import HeartbeatResult, LeaseConfig, ReapResult, WorkerInfo
from treadle.core.lifecycle import JobStatus, check_transition, is_legal
from treadle.core.outcome import Outcome, OutcomeKind
from treadle.core.retry import RetryDecision, RetryPolicy, decide

__all__ = [
    "Clock",
    "Deadline",
    "Enqueued",
    "ErrorClass",
    "ErrorInfo",
    "HeartbeatResult",
    "Job",
    "JobEvent",
    "JobFilter",
    "JobKind",
    "JobLog",
    "JobStatus",
    "LeaseConfig",
    "ManualClock",
    "NewJob",
    "Outcome",
    "OutcomeKind",
    "QueueInfo",
    "ReapResult",
    "RetryDecision",
    "RetryPolicy",
    "SystemClock",
    "WorkerInfo",
    "check_transition",
    "classify",
    "decide",
    "is_legal",
]
