"""What is notified, and when: fills as stop or target hits, runs skipped for a reason the trader must act on (once
per spell), drift between the books and the broker (once per difference), and the daily summary."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from brokers.interface import BrokerPosition
from notifications.models import Notification, NotificationKind
from orders.models import OrderLeg, OrderSide
from portfolio.services import positions_reconcile
from signals_app.models import LLMCall
from tests.factories import (
    BrokerConnectionFactory,
    OrderFactory,
    PromptVersionFactory,
    StrategyExecutionFactory,
    StrategyFactory,
    TradeFactory,
    TradingSignalFactory,
)
from trading.models import ExecutionStatus, SkipReason
from trading.notifications import notify_fill, notify_run_skipped
from trading.tasks import daily_summaries

pytestmark = pytest.mark.django_db


def kinds() -> list[str]:
    return list(Notification.objects.order_by("pk").values_list("kind", flat=True))


@pytest.mark.parametrize(
    ("leg", "kind", "headline"),
    [
        (OrderLeg.ENTRY, NotificationKind.ORDER_FILLED, "Filled"),
        (OrderLeg.STOP, NotificationKind.STOP_HIT, "Stop hit"),
        (OrderLeg.TARGET, NotificationKind.TARGET_HIT, "Target hit"),
        (OrderLeg.EXIT, NotificationKind.ORDER_FILLED, "Filled"),
    ],
    ids=["entry", "stop", "target", "exit"],
)
def test_a_fill_is_told_as_what_it_was(leg, kind, headline):
    side = OrderSide.BUY if leg == OrderLeg.ENTRY else OrderSide.SELL
    trade = TradeFactory(order=OrderFactory(leg=leg, side=side, filled=True))

    notification = notify_fill(trade=trade)

    assert notification.kind == kind
    assert notification.subject.startswith(f"{headline}: {side}")
    assert notification.data["leg"] == leg


def skipped(strategy, reason, *, minutes_ago: int):
    return StrategyExecutionFactory(
        strategy=strategy,
        status=ExecutionStatus.SKIPPED,
        skip_reason=reason,
        error=f"{reason} happened",
        started_at=timezone.now() - dt.timedelta(minutes=minutes_ago),
    )


def test_a_run_skipped_for_a_reason_to_act_on_is_told_once_per_spell():
    strategy = StrategyFactory()
    first = skipped(strategy, SkipReason.SESSION_DOWN, minutes_ago=30)
    second = skipped(strategy, SkipReason.SESSION_DOWN, minutes_ago=20)
    completed = StrategyExecutionFactory(
        strategy=strategy, finished=True, started_at=timezone.now() - dt.timedelta(minutes=10)
    )
    again = skipped(strategy, SkipReason.SESSION_DOWN, minutes_ago=5)
    del completed

    told = [notify_run_skipped(execution=run) for run in (first, second, again)]

    assert [n is not None for n in told] == [True, False, True]
    assert told[0].kind == NotificationKind.RUN_SKIPPED
    assert "Broker session down" in told[0].subject and "session_down happened" in told[0].body


@pytest.mark.parametrize(
    "reason",
    [SkipReason.INACTIVE, SkipReason.CLAIM_HELD, SkipReason.TRIGGER_EXPIRED, SkipReason.MARKET_CLOSED],
)
def test_a_run_skipped_for_a_reason_that_is_no_news_is_not_told(reason):
    assert notify_run_skipped(execution=skipped(StrategyFactory(), reason, minutes_ago=1)) is None
    assert kinds() == []


def test_drift_is_told_once_per_difference():
    connection = BrokerConnectionFactory()
    held = [BrokerPosition(conid=1, symbol="SPY", quantity=Decimal(76), average_cost=Decimal(500))]

    positions_reconcile(broker_connection=connection, broker_positions=held)
    positions_reconcile(broker_connection=connection, broker_positions=held)  # the same difference
    positions_reconcile(broker_connection=connection, broker_positions=[])  # resolved
    positions_reconcile(broker_connection=connection, broker_positions=held)  # back again

    drifts = Notification.objects.filter(kind=NotificationKind.DRIFT_FOUND)
    assert drifts.count() == 2
    first = drifts.first()
    assert first.owner == connection.owner
    assert "SPY: ours 0, the broker's 76" in first.body
    assert first.data["drift"] == [{"symbol": "SPY", "ours": "0", "broker": "76"}]


def test_the_daily_summary_tells_each_trader_their_pnl_runs_signals_and_llm_cost():
    strategy = StrategyFactory()
    owner = strategy.owner
    completed = StrategyExecutionFactory(strategy=strategy, finished=True)
    StrategyExecutionFactory(strategy=strategy, status=ExecutionStatus.FAILED, error="boom")
    TradingSignalFactory(strategy=strategy, execution=completed, action="BUY")
    TradeFactory(order=OrderFactory(owner=owner, strategy=strategy, filled=True), realized_pnl=Decimal("12.5"))
    LLMCall.objects.create(
        strategy=strategy,
        prompt_version=PromptVersionFactory(),
        analyst="anthropic",
        requested_model="claude-test",
        cache_key="k" * 64,
        cost_usd=Decimal("0.0421"),
    )
    StrategyFactory()  # a trader whose strategies did nothing today hears nothing

    assert daily_summaries() == 1

    summary = Notification.objects.get(kind=NotificationKind.DAILY_SUMMARY)
    assert summary.owner == owner
    assert "Realised P&L: 12.50 from 1 fills." in summary.body
    assert "Runs: 1 COMPLETED, 1 FAILED." in summary.body
    assert "Signals: 1 BUY." in summary.body
    assert "LLM cost: $0.04." in summary.body
