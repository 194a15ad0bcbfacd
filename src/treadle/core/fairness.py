"""Weighted tenant fairness (ADR 0010): how a claim's slots are shared.

A claim for ``slots`` jobs gives each slot, one at a time, to the tenant whose running
jobs per unit of weight (counting the slots already given) is lowest. Ties, common when
jobs finish as fast as they start, are broken by a random draw scaled by weight, so over
many claims tenants get slots in proportion to their weights. Stateless: every claimer
plans from the database's counts, nothing is kept between claims.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from treadle.core.errors import InvalidInput

MAX_TENANTS = 64  # tenants a claim plans for; more share the fallback path's order
MAX_WEIGHT = 1000


@dataclass(frozen=True)
class TenantLoad:
    tenant: str
    weight: int
    running: int


def allocate(loads: Sequence[TenantLoad], slots: int,
             rng: random.Random | None = None) -> dict[str, int]:
    """Slots per tenant, summing to ``slots`` (when any tenant is given)."""
    draw = (rng or random).random
    given = {t.tenant: 0 for t in loads}
    if not loads:
        return given
    for _ in range(slots):
        best = min(loads, key=lambda t: (t.running + given[t.tenant] + draw()) / t.weight)
        given[best.tenant] += 1
    return {k: v for k, v in given.items() if v}


def check_weight(weight: int) -> int:
    if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= MAX_WEIGHT:
        raise InvalidInput(f"tenant weight must be an integer from 1 to {MAX_WEIGHT}")
    return weight
