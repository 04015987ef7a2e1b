"""Fills into positions with average cost and realised P&L; outcomes and R multiples; valuation, statistics,
the stop/target watch; reconciliation against the simulated broker's own ledger."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from brokers.interface import BrokerPosition
from brokers.models import SimPosition
from brokers.services import broker_for
from market.clock import FixedClock
from notifications.models import Notification
from orders.models import Order, OrderLeg, OrderSide, Trade
from orders.statuses import OrderStatus
from portfolio.models import Position
from portfolio.services import (
    connection_reconcile,
    connection_track,
    fill_apply,
    portfolio_statistics,
    portfolio_valuation,
    positions_disagreeing,
    positions_reconcile,
    snapshots_take,
    stops_watch,
)
from signals_app.models import SignalOutcome
from tests.factories import OrderFactory, PositionFactory, StrategyFactory, TradeFactory, TradingSignalFactory
from tests.pipeline.conftest import bars_create, last_session, strategy_with_indicators
from trading.executor import execute
from trading.notifications import notify_fill, notify_rejection
from trading.services import execution_start

pytestmark = pytest.mark.django_db
D = Decimal


def fill(strategy, side, quantity, price, *, signal=None, commission="1", at=None, **order_fields) -> Trade:
    order = OrderFactory(
        owner=strategy.owner,
        strategy=strategy,
        symbol=strategy.symbol,
        signal=signal,
        side=side,
        quantity=D(quantity),
        limit_price=D(price),
        leg=OrderLeg.ENTRY if side == OrderSide.BUY else OrderLeg.EXIT,
        filled=True,
        **order_fields,
    )
    return TradeFactory(order=order, price=D(price), commission=D(commission), executed_at=at or timezone.now())


@pytest.fixture
def strategy(db):
    return StrategyFactory()


def test_buys_average_their_cost_with_commission_and_sells_realise_against_it(strategy):
    fill_apply(trade=fill(strategy, "BUY", 10, "100"))
    fill_apply(trade=fill(strategy, "BUY", 10, "110"))
    position = Position.objects.get(strategy=strategy)
    assert (position.quantity, position.average_cost) == (20, D("105.100000"))  # (1001 + 1101) / 20

    first = fill_apply(trade=fill(strategy, "SELL", 5, "120"))
    assert first.realized_pnl == D("73.5000")  # (120 - 105.1) x 5 - 1
    last = fill_apply(trade=fill(strategy, "SELL", 15, "90"))
    assert last.realized_pnl == D("-227.5000")  # (90 - 105.1) x 15 - 1

    position.refresh_from_db()
    assert (position.quantity, position.realized_pnl) == (0, D("-154.0000"))
    assert position.closed_at is not None
    assert last.closed


def test_a_fill_is_applied_once(strategy):
    trade = fill(strategy, "BUY", 10, "100")

    fill_apply(trade=trade)
    again = fill_apply(trade=trade)

    assert not again.applied
    assert Position.objects.get(strategy=strategy).quantity == 10


def test_a_new_buy_after_a_close_opens_a_new_position(strategy):
    fill_apply(trade=fill(strategy, "BUY", 10, "100"))
    fill_apply(trade=fill(strategy, "SELL", 10, "101"))
    fill_apply(trade=fill(strategy, "BUY", 5, "102"))

    assert Position.objects.filter(strategy=strategy).count() == 2
    assert Position.objects.open().get(strategy=strategy).average_cost == D("102.200000")


@pytest.mark.parametrize(
    ("exit_price", "outcome", "r_multiple"),
    [
        pytest.param("110", SignalOutcome.WIN, D("2.0000"), id="target-2R"),
        pytest.param("95", SignalOutcome.LOSS, D("-1.0000"), id="stopped-1R"),
        pytest.param("100.2", SignalOutcome.SCRATCH, D("0.0400"), id="scratch"),
    ],
)
def test_closing_the_position_settles_the_signals_outcome_and_r_multiple(strategy, exit_price, outcome, r_multiple):
    signal = TradingSignalFactory(strategy=strategy)  # entry 100, stop 95: 5 a share at risk
    fill_apply(trade=fill(strategy, "BUY", 10, "100", signal=signal))
    signal.refresh_from_db()
    assert signal.outcome == SignalOutcome.OPEN

    fill_apply(trade=fill(strategy, "SELL", 10, exit_price))

    signal.refresh_from_db()
    assert (signal.outcome, signal.r_multiple) == (outcome, r_multiple)


def test_statistics_count_closing_fills_win_rate_extremes_and_max_drawdown(strategy):
    for index, pnl in enumerate(["100", "-50", "30", "-80"]):
        trade = fill(strategy, "SELL", 1, "100", at=timezone.now() + dt.timedelta(minutes=index))
        Trade.objects.filter(pk=trade.pk).update(realized_pnl=D(pnl))

    stats = portfolio_statistics(owner=strategy.owner)

    assert (stats.trades, stats.wins, stats.losses, stats.win_rate) == (4, 2, 2, D("0.5000"))
    assert (stats.average_win, stats.average_loss) == (D("65.00"), D("-65.00"))
    assert (stats.largest_win, stats.largest_loss, stats.total_pnl) == (D("100"), D("-80"), D("0"))
    assert stats.max_drawdown == D("100")  # 100 -> 50 -> 80 -> 0


def test_valuation_prices_open_positions_by_the_last_bar_and_counts_cash_from_the_fills(owner):
    strategy = strategy_with_indicators(owner)  # last close 100
    fill_apply(trade=fill(strategy, "BUY", 10, "90", commission="1"))

    valuation = portfolio_valuation(owner=owner)

    assert valuation.positions_value == D("1000.00")
    assert valuation.unrealized_pnl == D("99.00")  # 1000 - 10 x 90.1
    assert valuation.cash == D("99099.00")  # 100000 - 900 - 1
    assert valuation.total_value == D("100099.00")


def test_reconciliation_flags_drift_and_changes_nothing(strategy):
    PositionFactory(owner=strategy.owner, strategy=strategy, symbol=strategy.symbol, quantity=D(10))

    same = positions_reconcile(
        broker_connection=strategy.broker_connection,
        broker_positions=[BrokerPosition(conid=None, symbol=strategy.symbol.symbol, quantity=D(10), average_cost=D(1))],
    )
    differs = positions_reconcile(
        broker_connection=strategy.broker_connection,
        broker_positions=[BrokerPosition(conid=None, symbol=strategy.symbol.symbol, quantity=D(7), average_cost=D(1))],
    )

    assert not same.has_drift
    assert differs.has_drift
    assert differs.drift == [{"symbol": strategy.symbol.symbol, "ours": "10.000000", "broker": "7"}]
    assert Position.objects.get(strategy=strategy).quantity == 10


def next_session_after(day: dt.datetime) -> dt.datetime:
    day += dt.timedelta(days=1)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return day


def run_and_fill(strategy):
    """A BUY run, then the next session's bar trades through its limit and the tracking poll sees the fill."""
    outcome = execute(execution_start(strategy=strategy, trigger="manual").pk)
    next_day = next_session_after(last_session(0))
    bars_create(strategy.symbol, closes=[99.0], end=next_day)
    clock = FixedClock(next_day + dt.timedelta(hours=21))
    results = connection_track(
        broker_connection=strategy.broker_connection, clock=clock, on_fill=notify_fill, on_rejection=notify_rejection
    )
    return Order.objects.get(pk=outcome.order_ids[0]), results


def test_orders_to_fills_to_positions_on_the_simulated_broker_and_drift_when_its_ledger_changes(settings, owner):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    strategy = strategy_with_indicators(owner)

    entry, results = run_and_fill(strategy)

    entry.refresh_from_db()
    assert entry.status == OrderStatus.FILLED
    assert [r.trade.order_id for r in results] == [entry.pk]
    position = Position.objects.open().get(strategy=strategy)
    assert position.quantity == entry.quantity
    assert position.stop_loss == entry.signal.stop_loss
    assert Notification.objects.get(order=entry).subject.startswith("Filled: BUY")
    assert not connection_reconcile(broker_connection=strategy.broker_connection).has_drift

    SimPosition.objects.filter(account__connection=strategy.broker_connection).update(quantity=D(1))

    assert connection_reconcile(broker_connection=strategy.broker_connection).has_drift


def test_a_fill_whose_status_was_taken_but_whose_execution_was_not_is_booked_on_the_next_pass(settings, owner):
    # given a BUY the simulated broker filled, and a tracking pass that took the order's Filled status but died before
    # recording the execution (the state the SPY demo's exit was left in: Filled, no Trade, the position unchanged)
    strategy = strategy_with_indicators(owner)
    outcome = execute(execution_start(strategy=strategy, trigger="manual").pk)
    next_day = next_session_after(last_session(0))
    bars_create(strategy.symbol, closes=[99.0], end=next_day)
    clock = FixedClock(next_day + dt.timedelta(hours=21))
    entry = Order.objects.get(pk=outcome.order_ids[0])
    broker = broker_for(strategy.broker_connection, clock=clock)
    [reported] = [broker.order_status(entry.broker_order_id)]
    assert reported.status == OrderStatus.FILLED
    Order.objects.filter(pk=entry.pk).update(status=OrderStatus.FILLED, filled_quantity=reported.filled_quantity)
    assert not Trade.objects.filter(order=entry).exists()

    # when the next pass runs (no order is working any more)
    results = connection_track(broker_connection=strategy.broker_connection, clock=clock)

    # then the execution is recorded once, booked into the position, and the books equal the broker's
    [trade] = Trade.objects.filter(order=entry)
    assert [r.trade for r in results] == [trade]
    position = Position.objects.open().get(strategy=strategy)
    assert position.quantity == trade.quantity == entry.quantity
    assert not connection_reconcile(broker_connection=strategy.broker_connection).has_drift
    connection_track(broker_connection=strategy.broker_connection, clock=clock)
    assert Trade.objects.filter(order=entry).count() == 1


def test_the_books_check_names_a_position_that_differs_from_its_trades(owner):
    strategy = strategy_with_indicators(owner)
    run_and_fill(strategy)
    assert positions_disagreeing() == []
    position = Position.objects.get(strategy=strategy)

    Position.objects.filter(pk=position.pk).update(quantity=position.quantity - 1)

    [problem] = positions_disagreeing()
    assert problem.startswith(f"position {position.pk}: stored Books(quantity=Decimal('{position.quantity - 1}')")
    Position.objects.filter(pk=position.pk).update(quantity=position.quantity)  # right again for the check after


@pytest.mark.parametrize(
    ("stop", "target"),
    [pytest.param(D(101), None, id="stop-hit"), pytest.param(D(90), D(99), id="target-hit")],
)
def test_the_stop_watch_exits_a_position_at_its_stop_or_target_with_a_marketable_day_limit(
    settings, owner, stop, target
):
    settings.STOP_WATCH_ALLOWANCE = 0.005
    strategy = strategy_with_indicators(owner)  # last close 100
    run_and_fill(strategy)
    position = Position.objects.open().get(strategy=strategy)
    Position.objects.filter(pk=position.pk).update(stop_loss=stop, take_profit=target)  # the price 100 is past it

    placed = stops_watch()
    again = stops_watch()

    assert len(placed) == 1 and again == []
    order = placed[0]
    assert (order.side, order.time_in_force, order.quantity, order.source) == ("SELL", "DAY", 100, "stop_watch")
    assert order.limit_price == D("99.50")  # last price 100 less 0.5%
    assert order.status == OrderStatus.SUBMITTED
    assert order.position == position


def test_the_stop_watch_leaves_positions_inside_their_range_alone(owner):
    strategy = strategy_with_indicators(owner)  # last close 100
    PositionFactory(owner=owner, strategy=strategy, symbol=strategy.symbol, stop_loss=D(95), take_profit=D(110))

    assert stops_watch() == []


def test_the_stop_watch_leaves_a_position_with_a_working_bracket_to_the_bracket(owner):
    strategy = strategy_with_indicators(owner, use_bracket_orders=True)
    run_and_fill(strategy)
    position = Position.objects.open().get(strategy=strategy)
    Position.objects.filter(pk=position.pk).update(stop_loss=D(101))

    assert stops_watch() == []


def test_a_snapshot_records_the_valuation_for_every_account_holder(owner):
    strategy = strategy_with_indicators(owner)  # last close 100
    fill_apply(trade=fill(strategy, "BUY", 10, "90", commission="1"))

    [snapshot] = snapshots_take()

    assert snapshot.owner == owner
    assert (snapshot.cash, snapshot.positions_value, snapshot.total_value) == (
        D("99099.00"),
        D("1000.00"),
        D("100099.00"),
    )
    assert snapshot.unrealized_pnl == D("99.00")
