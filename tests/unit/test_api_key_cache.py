"""KeyCache (ADR 0033): a valid key is remembered for at most its time to live, counted
from the start of the read that found it valid; a revocation seen here wins."""

from __future__ import annotations

from treadle.api.keycache import KeyCache
from treadle.api.keystore import ApiKey
from treadle.core.clock import ManualClock

KEY = ApiKey("key_1", "t1", frozenset({"submit"}))
OTHER = ApiKey("key_2", "t1", frozenset({"read"}))


def test_a_key_is_kept_until_its_read_is_ttl_old() -> None:
    clock = ManualClock()
    cache = KeyCache(clock)
    started = cache.start_read()
    clock.advance(0.4)  # the read itself took a while: age counts from its start
    cache.put("h1", KEY, started)
    assert cache.get("h1", 1.0) == KEY
    clock.advance(0.59)
    assert cache.get("h1", 1.0) == KEY
    clock.advance(0.01)
    assert cache.get("h1", 1.0) is None
    assert len(cache) == 0


def test_forget_refuses_the_key_at_once_and_spares_others() -> None:
    cache = KeyCache(ManualClock())
    cache.put("h1", KEY, cache.start_read())
    cache.put("h2", OTHER, cache.start_read())
    cache.forget(KEY.id)
    assert cache.get("h1", 60) is None and cache.get("h2", 60) == OTHER


def test_a_read_begun_before_a_revocation_here_is_not_kept() -> None:
    cache = KeyCache(ManualClock())
    started = cache.start_read()  # the read may have seen the key before the revocation
    cache.forget(KEY.id)
    cache.put("h1", KEY, started)
    assert cache.get("h1", 60) is None
    cache.put("h1", KEY, cache.start_read())  # a read begun after it is kept
    assert cache.get("h1", 60) == KEY


def test_a_revoked_key_is_never_kept() -> None:
    from datetime import UTC, datetime

    cache = KeyCache(ManualClock())
    revoked = ApiKey("key_1", "t1", frozenset({"submit"}), revoked_at=datetime.now(UTC))
    cache.put("h1", revoked, cache.start_read())
    assert cache.get("h1", 60) is None


def test_the_cache_is_bounded() -> None:
    cache = KeyCache(ManualClock(), max_entries=3)
    for i in range(5):
        cache.put(f"h{i}", KEY, cache.start_read())
    assert len(cache) == 3
    assert cache.get("h0", 60) is None and cache.get("h4", 60) == KEY
