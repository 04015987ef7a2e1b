"""Fixtures for the gap fixes: a live strategy and a replay's copy of it (what replays.services makes for a run)."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.factories import StrategyFactory


@pytest.fixture
def live_strategy(owner):
    return StrategyFactory(owner=owner, name="Live swing")


@pytest.fixture
def replay_strategy(owner, live_strategy):
    """The replay's own copy of the live strategy, marked as replays.services marks it, on a simulated account of its
    own, and the Replay that points at it (Strategy.replay_of)."""
    from replays.models import Replay

    shadow = StrategyFactory(
        owner=owner,
        name="Replay copy of Live swing",
        symbol=live_strategy.symbol,
        is_replay=True,
        broker_connection__is_replay=True,
    )
    Replay.objects.create(
        owner=owner,
        strategy=live_strategy,
        shadow_strategy=shadow,
        symbol=live_strategy.symbol,
        bar_size="1d",
        start=dt.date(2022, 1, 3),
        end=dt.date(2022, 12, 30),
        analyst="rules",
    )
    return shadow
