"""The HTTP API (ADR 0301): FastAPI app, bearer-key auth, problem+json, metrics."""

from treadle.api.app import create_app
from treadle.api.auth import Principal, authenticate, principal_from_request, require
from treadle.api.config import ApiConfig
from treadle.api.keystore import ApiKey, Hook, KeyStore, open_keystore
from treadle.api.metrics import Metrics, PrometheusObserver
from treadle.api.problems import Problem
from treadle.api.server import config_from_env, serve, start_in_thread

__all__ = [
    "ApiConfig",
    "ApiKey",
    "Hook",
    "KeyStore",
    "Metrics",
    "Principal",
    "Problem",
    "PrometheusObserver",
    "authenticate",
    "config_from_env",
    "create_app",
    "open_keystore",
    "principal_from_request",
    "require",
    "serve",
    "start_in_thread",
]
