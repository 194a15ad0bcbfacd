"""Weighted sharing of a claim's slots among tenants (ADR 0010)."""

from __future__ import annotations

import random

import pytest

from treadle.core.errors import InvalidInput
from treadle.core.fairness import TenantLoad, allocate, check_weight


def test_slots_go_to_the_least_served_tenant_per_weight() -> None:
    rng = random.Random(1)
    got = allocate([TenantLoad("a", 1, 10), TenantLoad("b", 1, 0)], 4, rng)
    assert got == {"b": 4}
    got = allocate([TenantLoad("a", 3, 0), TenantLoad("b", 1, 0)], 8, rng)
    assert got == {"a": 6, "b": 2}


def test_ties_are_shared_by_weight_over_many_claims() -> None:
    rng = random.Random(7)
    wins = {"a": 0, "b": 0}
    for _ in range(4000):
        [(tenant, _n)] = allocate([TenantLoad("a", 3, 0), TenantLoad("b", 1, 0)], 1, rng).items()
        wins[tenant] += 1
    assert 0.6 < wins["a"] / 4000 < 0.9 and wins["b"] > 400


def test_weights_are_checked() -> None:
    for bad in (0, -1, 1001, True, 1.5):
        with pytest.raises(InvalidInput):
            check_weight(bad)  # type: ignore[arg-type]
