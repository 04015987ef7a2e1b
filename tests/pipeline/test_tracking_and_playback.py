"""Tracking across strategies and the playback feed: one poll per account, DAY orders that outlive their session,
and a playback strategy that advances one bar per run (and not again when a run is resumed)."""

from __future__ import annotations

import datetime as dt

import pytest

from config.celery import app
from market.clock import FixedClock
from market.models import MarketDataSource
from market.playback import playback_cursor
from orders.models import Order
from orders.statuses import OrderStatus
from portfolio.services import connection_track
from tests.pipeline.conftest import last_session, strategy_with_indicators
from trading import tasks
from trading.executor import execute
from trading.models import StrategyExecution
from trading.services import execution_finish, execution_start

pytestmark = pytest.mark.django_db


def test_a_playback_strategy_advances_one_bar_per_run_and_a_resumed_run_does_not_advance_again(owner):
    strategy = strategy_with_indicators(owner, market_data_source=MarketDataSource.PLAYBACK)

    first = execute(execution_start(strategy=strategy, trigger="manual").pk)
    after_first = playback_cursor(strategy)
    # the same execution delivered again (a worker crash after the run finished its steps)
    StrategyExecution.objects.filter(pk=first.execution_id).update(status="RUNNING", finished_at=None)
    execute(first.execution_id)
    assert playback_cursor(strategy) == after_first

    execution_finish(execution=StrategyExecution.objects.get(pk=first.execution_id), status="COMPLETED")
    execute(execution_start(strategy=strategy, trigger="manual").pk)

    bars = list(strategy.symbol.bars.order_by("timestamp").values_list("timestamp", flat=True))
    assert playback_cursor(strategy) == bars[bars.index(after_first) + 1]


def test_a_day_order_still_open_after_its_session_is_closed_out(owner):
    strategy = strategy_with_indicators(owner)
    outcome = execute(execution_start(strategy=strategy, trigger="manual").pk)
    entry = Order.objects.get(pk=outcome.order_ids[0])
    assert entry.status == OrderStatus.SUBMITTED
    # a week later, no bar has traded through the limit
    clock = FixedClock(last_session(0) + dt.timedelta(days=7, hours=22))

    connection_track(broker_connection=strategy.broker_connection, clock=clock)

    entry.refresh_from_db()
    assert entry.status in {OrderStatus.EXPIRED, OrderStatus.CANCELLED}


@pytest.fixture
def sent_tasks(monkeypatch):
    sent = []
    monkeypatch.setattr(tasks.orders_track_connection, "apply_async", lambda args, **kw: sent.append(args[0]))
    return sent


def test_one_tracking_poll_fans_out_one_task_per_account_with_working_orders(owner, other_user, sent_tasks):
    mine = strategy_with_indicators(owner)
    theirs = strategy_with_indicators(other_user)
    idle = strategy_with_indicators(owner, closes=False)
    for strategy in (mine, theirs):
        execute(execution_start(strategy=strategy, trigger="manual").pk)  # each leaves a working entry order

    count = tasks.orders_track()

    assert count == len(sent_tasks) == 2
    assert set(sent_tasks) == {mine.broker_connection_id, theirs.broker_connection_id}
    assert idle.broker_connection_id not in sent_tasks
    assert (
        app.conf.beat_schedule["orders-track"]["options"]["expires"]
        <= app.conf.beat_schedule["orders-track"]["schedule"]
    )
