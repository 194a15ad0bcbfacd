"""The HTTP API (ADR 0301): FastAPI app, bearer-key auth, problem+json, metrics.

Names are imported on first use, so ``treadle.api.models`` (the request and response
shapes the remote client parses with; ADR 0020) needs only pydantic, not the server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from treadle.api.app import create_app
    from treadle.api.auth import Principal, authenticate, principal_from_request, require
    from treadle.api.config import ApiConfig
    from treadle.api.keystore import ApiKey, Hook, KeyStore, open_keystore
    from treadle.api.metrics import Metrics, PrometheusObserver
    from treadle.api.problems import Problem
    from treadle.api.server import config_from_env, serve, start_in_thread

_WHERE = {
    "create_app": "app",
    "Principal": "auth", "authenticate": "auth", "principal_from_request": "auth",
    "require": "auth",
    "ApiConfig": "config",
    "ApiKey": "keystore", "Hook": "keystore", "KeyStore": "keystore", "open_keystore": "keystore",
    "Metrics": "metrics", "PrometheusObserver": "metrics",
    "Problem": "problems",
    "config_from_env": "server", "serve": "server", "start_in_thread": "server",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'treadle.api' has no attribute {name!r}")
    return getattr(importlib.import_module(f"treadle.api.{module}"), name)


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
