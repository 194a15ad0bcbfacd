"""Treadle's pure core: no I/O, no database, no web framework."""

from treadle.core.budget import Deadline
from treadle.core.classify import classify
from treadle.core.clock import Clock, ManualClock, SystemClock
from treadle.core.errors import ErrorClass, ErrorInfo
from treadle.core.job import Job, JobEvent, JobKind, JobLog, NewJob, QueueInfo
from treadle.core.lease import LeaseConfig
from treadle.core.lifecycle import JobStatus, check_transition, is_legal
from treadle.core.retry import RetryDecision, RetryPolicy, decide

__all__ = [
    "Clock",
    "Deadline",
    "ErrorClass",
    "ErrorInfo",
    "Job",
    "JobEvent",
    "JobKind",
    "JobLog",
    "JobStatus",
    "LeaseConfig",
    "ManualClock",
    "NewJob",
    "QueueInfo",
    "RetryDecision",
    "RetryPolicy",
    "SystemClock",
    "check_transition",
    "classify",
    "decide",
    "is_legal",
]
