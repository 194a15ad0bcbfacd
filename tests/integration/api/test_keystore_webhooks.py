"""KeyStore on real SQLite and PostgreSQL; webhook signing helpers."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator

import pytest

from treadle.api import ApiConfig, authenticate
from treadle.api.auth import keystore_for
from treadle.app import Treadle
from treadle.core.errors import ConfigurationError
from treadle.webhooks import SignatureError, sign, signed_headers, verify


@pytest.fixture
def app(db_url: str) -> Iterator[Treadle]:
    t = Treadle(db_url)
    yield t
    t.close()


def test_keys_are_stored_hashed_and_resolve(app: Treadle) -> None:
    ks = keystore_for(app)
    key, raw = ks.create_key("t1", "read,submit", name="ci")
    assert raw.startswith("trd_") and len(raw) > 40
    listed = ks.list_keys("t1")
    assert [k.id for k in listed] == [key.id] and listed[0].name == "ci"
    p = authenticate(app, raw)
    assert p is not None and p.tenant == "t1" and p.scopes == {"read", "submit"}
    assert not p.allows("admin") and p.allows("read")
    assert authenticate(app, raw + "x") is None
    assert authenticate(app, "") is None
    # the raw key is nowhere in the database; only its sha256 is
    digest = hashlib.sha256(raw.encode()).hexdigest()
    assert ks.lookup(raw) is not None and digest != raw
    assert ks.revoke(key.id) and ks.revoke(key.id)  # twice is fine
    assert authenticate(app, raw) is None
    assert not ks.revoke("key_missing")


def test_admin_bootstrap_key(app: Treadle) -> None:
    cfg = ApiConfig(admin_key="a" * 20)
    p = authenticate(app, "a" * 20, cfg)
    assert p is not None and p.tenant == "default" and p.allows("admin")
    assert authenticate(app, "a" * 19, cfg) is None


def test_bad_scopes_and_tenants_are_refused(app: Treadle) -> None:
    ks = keystore_for(app)
    with pytest.raises(ConfigurationError):
        ks.create_key("t", "root")
    with pytest.raises(ConfigurationError):
        ks.create_key("t", "")
    with pytest.raises(Exception, match="tenant"):
        ks.create_key(" bad", "read")


def test_idempotency_fingerprint_first_wins(app: Treadle) -> None:
    ks = keystore_for(app)
    assert ks.claim_idempotency("t", "k", "fp1") == "fp1"
    assert ks.claim_idempotency("t", "k", "fp2") == "fp1"
    assert ks.claim_idempotency("u", "k", "fp2") == "fp2"


def test_sign_and_verify() -> None:
    body = b'{"id":1}'
    h = signed_headers("sekrit", body, now=1_700_000_000)
    assert h["Treadle-Signature"] == sign("sekrit", body, 1_700_000_000)
    verify("sekrit", body, h, now=1_700_000_010)
    verify("sekrit", body.decode(), signature=h["Treadle-Signature"],
           timestamp=h["Treadle-Timestamp"], now=1_700_000_010)
    # rotation: any of several signatures may match
    verify("sekrit", body, {**h, "Treadle-Signature": "v1=00," + h["Treadle-Signature"]},
           now=1_700_000_010)
    bad_calls: tuple[Callable[[], None], ...] = (
        lambda: verify("sekrit", b'{"id":2}', h, now=1_700_000_010),
        lambda: verify("other", body, h, now=1_700_000_010),
        lambda: verify("sekrit", body, h, now=1_700_000_010 + 3600),
        lambda: verify("sekrit", body, {**h, "Treadle-Timestamp": "1700000001"},
                       now=1_700_000_010),
        lambda: verify("sekrit", body, {**h, "Treadle-Timestamp": "x"}),
        lambda: verify("sekrit", body, {}),
    )
    for bad in bad_calls:
        with pytest.raises(SignatureError):
            bad()
    # lower-case header names (as many frameworks hand them over) work too
    verify("sekrit", body, {k.lower(): v for k, v in signed_headers("sekrit", body).items()})
    assert time.time() > 0
