"""One contract, two brokers: whatever the simulated broker does, IBKR (through the strict fake gateway) does the same,
seen through the order service and the broker interface."""

from decimal import Decimal

import pytest

from orders.models import Order, OrderLeg, Trade
from orders.services import Bracket, OrderInputError, order_cancel, order_place, orders_sync
from orders.statuses import OrderStatus
from portfolio.services import fill_apply, manual_order_place
from tests.factories import PositionFactory, StrategyFactory, TradingSignalFactory


def place(subject, owner, *, place_with=order_place, **overrides):
    fields = {
        "owner": owner,
        "broker_connection": subject.connection,
        "symbol": overrides.pop("symbol", None) or _aapl(),
        "side": "BUY",
        "quantity": Decimal("10"),
        "order_type": "LMT",
        "limit_price": Decimal("99.50"),
        "clock": subject.clock,
        "broker": subject.broker,
    }
    fields.update(overrides)
    return place_with(**fields)


def place_manual(subject, owner, **overrides):
    """A trader's own order, as the order page, the API and the ibkr command place it."""
    return place(subject, owner, place_with=manual_order_place, **overrides)


def _aapl():
    from tests.brokers.conftest import broker_symbol

    return broker_symbol()


def test_account_summary_starts_with_the_connections_cash(any_broker):
    summary = any_broker.broker.account_summary()

    assert summary.cash == Decimal("10000")
    assert summary.net_liquidation == Decimal("10000")
    assert summary.buying_power == Decimal("10000")


def test_limit_order_goes_from_submitted_to_filled_with_position_and_execution(any_broker, owner):
    order = place(any_broker, owner)
    assert order.status == OrderStatus.SUBMITTED
    assert any_broker.broker.order_status(order.broker_order_id).status == "SUBMITTED"

    any_broker.market.fill(order, Decimal("99.50"))
    trades = orders_sync(broker_connection=any_broker.connection, broker=any_broker.broker)

    order.refresh_from_db()
    assert order.status == OrderStatus.FILLED
    assert order.filled_quantity == Decimal("10")
    assert order.average_fill_price == Decimal("99.50")
    assert [(t.order_id, t.quantity, t.price) for t in trades] == [(order.pk, Decimal("10"), Decimal("99.50"))]
    assert trades[0].commission > 0
    positions = any_broker.broker.positions()
    assert [(p.symbol, p.quantity, p.average_cost) for p in positions] == [("AAPL", Decimal("10"), Decimal("99.50"))]
    executions = any_broker.broker.executions()
    assert [(e.order_ref, e.quantity, e.price) for e in executions] == [
        (order.client_order_id, Decimal("10"), Decimal("99.50"))
    ]


def test_sync_records_each_execution_once(any_broker, owner):
    order = place(any_broker, owner)
    any_broker.market.fill(order, Decimal("99.50"))

    first = orders_sync(broker_connection=any_broker.connection, broker=any_broker.broker)
    second = orders_sync(broker_connection=any_broker.connection, broker=any_broker.broker)

    assert len(first) == 1
    assert second == []
    assert Trade.objects.filter(order=order).count() == 1


def test_cancelled_order_is_cancelled_at_the_broker_too(any_broker, owner):
    order = place(any_broker, owner, limit_price=Decimal("98.00"))

    order = order_cancel(order=order, broker=any_broker.broker)

    assert order.status == OrderStatus.CANCELLED
    assert any_broker.broker.order_status(order.broker_order_id).status == "CANCELLED"
    assert list(order.status_changes.values_list("to_status", flat=True)) == [
        "SUBMITTING",
        "SUBMITTED",
        "CANCEL_REQUESTED",
        "CANCELLED",
    ]


def test_order_the_account_cannot_pay_for_is_rejected_with_the_brokers_reason(any_broker, owner):
    order = place(any_broker, owner, quantity=Decimal("150"), limit_price=Decimal("100.00"))

    assert order.status == OrderStatus.REJECTED
    assert order.broker_order_id == ""
    assert "cash" in order.status_reason or "funds" in order.status_reason


def test_the_same_intent_twice_is_one_order_at_the_broker(any_broker, owner, aapl):
    strategy = StrategyFactory(owner=owner, symbol=aapl, broker_connection=any_broker.connection)
    signal = TradingSignalFactory(strategy=strategy)

    first = place(any_broker, owner, strategy=strategy, signal=signal)
    second = place(any_broker, owner, strategy=strategy, signal=signal)

    assert first.client_order_id == f"s{strategy.pk}-g{signal.pk}-entry"
    assert second.pk == first.pk
    assert second.status == OrderStatus.SUBMITTED
    assert Order.objects.filter(client_order_id=first.client_order_id).count() == 1
    assert any_broker.orders_at_broker() == 1


def test_bracket_exit_filling_cancels_the_other_exit(any_broker, owner):
    entry = place(
        any_broker,
        owner,
        limit_price=Decimal("100.00"),
        bracket=Bracket(stop_price=Decimal("97.00"), take_profit=Decimal("103.00")),
    )
    stop = entry.children.get(leg=OrderLeg.STOP)
    target = entry.children.get(leg=OrderLeg.TARGET)
    assert (entry.status, stop.status, target.status) == ("SUBMITTED", "SUBMITTED", "SUBMITTED")
    assert (stop.client_order_id, target.client_order_id) == (
        f"{entry.client_order_id}-SL",
        f"{entry.client_order_id}-TP",
    )
    assert stop.broker_order_id and target.broker_order_id and stop.broker_order_id != target.broker_order_id

    any_broker.market.fill(entry, Decimal("100.00"))
    orders_sync(broker_connection=any_broker.connection, broker=any_broker.broker)
    any_broker.market.fill(target, Decimal("103.00"))
    trades = orders_sync(broker_connection=any_broker.connection, broker=any_broker.broker)

    entry.refresh_from_db()
    stop.refresh_from_db()
    target.refresh_from_db()
    assert (entry.status, target.status, stop.status) == ("FILLED", "FILLED", "CANCELLED")
    assert [(t.order_id, t.price) for t in trades] == [(target.pk, Decimal("103.00"))]
    assert any_broker.broker.positions() == []


@pytest.mark.parametrize("leg_fills", ["stop"], ids=["stop-fills-target-cancelled"])
def test_bracket_stop_filling_cancels_the_target(any_broker, owner, leg_fills):
    entry = place(
        any_broker,
        owner,
        limit_price=Decimal("100.00"),
        bracket=Bracket(stop_price=Decimal("97.00"), take_profit=Decimal("103.00")),
    )
    stop = entry.children.get(leg=OrderLeg.STOP)
    target = entry.children.get(leg=OrderLeg.TARGET)

    any_broker.market.fill(entry, Decimal("100.00"))
    orders_sync(broker_connection=any_broker.connection, broker=any_broker.broker)
    any_broker.market.fill(stop, Decimal("97.00"))
    orders_sync(broker_connection=any_broker.connection, broker=any_broker.broker)

    stop.refresh_from_db()
    target.refresh_from_db()
    assert (stop.status, target.status) == ("FILLED", "CANCELLED")
    assert stop.average_fill_price == Decimal("97.00")


def test_modify_changes_the_working_orders_price(any_broker, owner):
    from brokers.interface import OrderRequest

    order = place(any_broker, owner, limit_price=Decimal("99.00"), tif="GTC")
    changed = OrderRequest(
        client_order_id=order.client_order_id,
        conid=order.conid,
        symbol="AAPL",
        side="BUY",
        quantity=order.quantity,
        order_type="LMT",
        limit_price=Decimal("99.75"),
        tif="GTC",
        symbol_id=order.symbol_id,
    )

    placement = any_broker.broker.modify(order.broker_order_id, changed)
    any_broker.market.fill(order, Decimal("99.75"))
    orders_sync(broker_connection=any_broker.connection, broker=any_broker.broker)

    order.refresh_from_db()
    assert placement.broker_order_ids == [order.broker_order_id]
    assert (order.status, order.average_fill_price) == (OrderStatus.FILLED, Decimal("99.75"))


# --- long-only: exits of a position never sell more than it holds ---------------------------------------------------


def test_a_second_exit_while_the_first_is_working_is_refused_before_it_reaches_the_broker(any_broker, owner, aapl):
    # Given 10 shares bought and held as a position, and an exit of 4 of them working at the broker
    bought = place(any_broker, owner)
    any_broker.market.fill(bought, Decimal("99.50"))
    orders_sync(broker_connection=any_broker.connection, broker=any_broker.broker)
    position = PositionFactory(strategy=None, owner=owner, symbol=aapl, quantity=Decimal("10"))
    first_exit = place(any_broker, owner, side="SELL", quantity=Decimal("4"), leg=OrderLeg.EXIT, position=position)
    assert first_exit.status == OrderStatus.SUBMITTED
    sent_before = any_broker.orders_at_broker()

    # When an exit of all 10 is placed (a next run's SELL, or the stop watch) while the first still works
    second_exit = place(any_broker, owner, side="SELL", quantity=Decimal("10"), leg=OrderLeg.EXIT, position=position)

    # Then it is recorded REJECTED with the reason and never sent: the account would have gone short
    assert second_exit.status == OrderStatus.REJECTED
    assert second_exit.status_reason == (
        f"the position holds 10 and exits for 4 are still working ({first_exit.client_order_id}): "
        "selling 10 more would go short"
    )
    assert any_broker.orders_at_broker() == sent_before

    # And the shares no exit covers yet may still be sold
    rest = place(any_broker, owner, side="SELL", quantity=Decimal("6"), leg=OrderLeg.EXIT, position=position)
    assert rest.status == OrderStatus.SUBMITTED
    assert any_broker.orders_at_broker() == sent_before + 1


@pytest.mark.parametrize("held", ["0", "5"], ids=["closed-position", "smaller-position"])
def test_an_exit_larger_than_the_position_is_refused(any_broker, owner, aapl, held):
    position = PositionFactory(strategy=None, owner=owner, symbol=aapl, quantity=Decimal(held))

    order = place(any_broker, owner, side="SELL", quantity=Decimal("10"), leg=OrderLeg.EXIT, position=position)

    assert order.status == OrderStatus.REJECTED
    assert order.status_reason == f"the position holds {held}: selling 10 would go short"
    assert any_broker.orders_at_broker() == 0


def test_a_manual_sell_with_nothing_held_is_refused_and_nothing_is_recorded_or_sent(
    any_broker, owner, other_user, aapl
):
    # given no open position of the owner in AAPL (only someone else's)
    PositionFactory(strategy=None, owner=other_user, symbol=aapl, quantity=Decimal("10"))

    # when the owner places a manual SELL
    with pytest.raises(OrderInputError, match="you hold no AAPL on this account: a SELL can only close"):
        place_manual(any_broker, owner, side="SELL", quantity=Decimal("5"))

    # then nothing is recorded and nothing reaches the broker (it would have gone short)
    assert not Order.objects.filter(owner=owner).exists()
    assert any_broker.orders_at_broker() == 0


def test_a_manual_sell_closes_part_of_the_owners_position_on_this_account(any_broker, owner, aapl):
    # given a strategy on this account holding 10 AAPL (bought at the broker too)
    strategy = StrategyFactory(owner=owner, symbol=aapl, broker_connection=any_broker.connection)
    position = PositionFactory(
        owner=owner, strategy=strategy, symbol=aapl, quantity=Decimal("10"), average_cost=Decimal("99")
    )
    bought = place(any_broker, owner, quantity=Decimal("10"))
    any_broker.market.fill(bought, Decimal("99.50"))
    orders_sync(broker_connection=any_broker.connection, broker=any_broker.broker)

    # when the owner sells 4 of them by hand
    sold = place_manual(any_broker, owner, side="SELL", quantity=Decimal("4"))

    # then the SELL is an exit of that position, sent, and its fill reduces that position
    assert (sold.status, sold.leg, sold.position_id) == (OrderStatus.SUBMITTED, OrderLeg.EXIT, position.pk)
    any_broker.market.fill(sold, Decimal("99.50"))
    trades = orders_sync(broker_connection=any_broker.connection, broker=any_broker.broker)
    fill_apply(trade=next(t for t in trades if t.order_id == sold.pk))
    position.refresh_from_db()
    assert position.quantity == Decimal("6")
