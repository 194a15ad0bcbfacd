"""The agent examples run offline (scripted model) and do what the README says."""

from __future__ import annotations

from pathlib import Path

from examples.agents import abandoned_cart, planner, rewriter
from treadle.testing import migrated, sqlite_url


def test_rewriter_bulk_40(tmp_path: Path) -> None:
    assert rewriter.main(migrated(sqlite_url(tmp_path))) == 0


def test_weekly_planner_on_a_schedule(tmp_path: Path) -> None:
    assert planner.main(migrated(sqlite_url(tmp_path)), every=1.0, runs=2) == 0


def test_abandoned_cart_webhook_to_signed_callback(tmp_path: Path) -> None:
    assert abandoned_cart.main(migrated(sqlite_url(tmp_path))) == 0
