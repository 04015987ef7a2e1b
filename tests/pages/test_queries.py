"""The busiest pages run a bounded number of queries, however many rows the user has."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import (
    LineageRecordFactory,
    NotificationFactory,
    OrderFactory,
    PositionFactory,
    StrategyExecutionFactory,
    StrategyFactory,
    TradingSignalFactory,
)

PAGES = [
    ("dashboard", lambda w: "/", 10),
    ("signals list", lambda w: "/signals/", 7),
    ("lineage viewer", lambda w: f"/lineage/?execution={w.execution.pk}", 8),
    ("lineage by strategy", lambda w: f"/lineage/?strategy={w.strategy.pk}", 8),
    ("lineage latest run", lambda w: "/lineage/", 8),
    ("lineage step", lambda w: f"/lineage/{w.execution.pk}/generate_charts/", 7),
    ("strategy detail", lambda w: f"/strategies/{w.strategy.pk}/", 8),
    ("orders list", lambda w: "/orders/", 7),
    ("strategies list", lambda w: "/strategies/", 5),
    ("logs", lambda w: "/logs/", 8),  # notifications: one read for them, one for all their deliveries
    ("logs notifications", lambda w: "/logs/?kind=notifications", 4),
    ("notifications", lambda w: "/notifications/", 4),
    ("settings", lambda w: "/settings/", 4),
]


def _grow(world, times: int) -> None:
    """More of everything the pages list: strategies, runs with steps, signals, orders, positions."""
    for n in range(times):
        strategy = StrategyFactory(owner=world.user, symbol=world.symbol, broker_connection=world.connection)
        execution = StrategyExecutionFactory(strategy=world.strategy, finished=True)
        for step in range(1, 4):
            LineageRecordFactory(execution=execution, step_number=step, step_name=f"step_{step}")
        TradingSignalFactory(strategy=strategy, execution=execution)
        OrderFactory(owner=world.user, symbol=world.symbol, strategy=strategy)
        PositionFactory(strategy=strategy)
        NotificationFactory(execution=execution, subject=f"Run failed: {strategy.name}")
        LineageRecordFactory(execution=world.execution, step_number=20 + n, step_name=f"extra_{execution.pk}")


def _count(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


@pytest.mark.parametrize(("name", "url", "limit"), PAGES, ids=[name for name, *_ in PAGES])
def test_page_queries_are_bounded(name, url, limit, world, owner_client, django_assert_max_num_queries):
    _grow(world, 3)
    owner_client.get(url(world))  # the session and profile are read once per request; warm both
    # Without Redis (the embedded default, the SQLite lane) the session comes from the database, not the cache.
    session_reads = 0 if settings.REDIS_URL else 1
    with django_assert_max_num_queries(limit + session_reads):
        owner_client.get(url(world))


@pytest.mark.parametrize(("name", "url", "limit"), PAGES, ids=[name for name, *_ in PAGES])
def test_page_queries_do_not_grow_with_rows(name, url, limit, world, owner_client):
    _grow(world, 2)
    owner_client.get(url(world))  # first request of a session also reads the profile: warm it
    few = _count(owner_client, url(world))
    _grow(world, 6)
    assert _count(owner_client, url(world)) == few
