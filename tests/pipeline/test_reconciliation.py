"""Reconciliation you can see: a drift between our books and the simulated broker's ledger is recorded, told, shown on
the dashboard and the portfolio page, halts the symbol (runs SKIPPED drift_halt, exits wait), and is resolved by the
owner accepting the broker's position, booked as an adjusting trade so the position still equals its trades. Every
exit is capped at what the broker holds."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db.models import F
from django.urls import reverse

from brokers.models import BrokerConnection, SimAccount, SimPosition
from market.clock import FixedClock
from notifications.models import Notification, NotificationKind
from orders.models import Order, OrderSide, OrderSource, Trade
from orders.statuses import OrderStatus
from portfolio.models import Position, Reconciliation
from portfolio.services import (
    ResolutionError,
    connection_reconcile,
    connection_track,
    drift_accept_broker,
    manual_order_place,
    position_exit_place,
    positions_disagreeing,
    stops_watch,
)
from tests.pipeline.conftest import bars_create, last_session, strategy_with_indicators
from trading.executor import execute
from trading.models import ExecutionStatus, SkipReason
from trading.services import execution_start

pytestmark = pytest.mark.django_db
D = Decimal


def next_session_after(day: dt.datetime) -> dt.datetime:
    day += dt.timedelta(days=1)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return day


@pytest.fixture
def held(owner):
    """A strategy whose BUY filled at the simulated broker and was booked: our position equals the broker's."""
    strategy = strategy_with_indicators(owner)
    outcome = execute(execution_start(strategy=strategy, trigger="manual").pk)
    next_day = next_session_after(last_session(0))
    bars_create(strategy.symbol, closes=[99.0], end=next_day)
    connection_track(broker_connection=strategy.broker_connection, clock=FixedClock(next_day + dt.timedelta(hours=21)))
    position = Position.objects.open().get(strategy=strategy)
    assert position.quantity == Order.objects.get(pk=outcome.order_ids[0]).quantity
    return strategy, position


def broker_holds(strategy, quantity, price=None) -> None:
    """The account's shares changed without an execution we can see (sold or bought by hand at the broker, say), at
    `price` (else the position's cost): its cash moves with them."""
    held = SimPosition.objects.get(account__connection=strategy.broker_connection)
    price = D(price) if price is not None else Position.objects.get(strategy=strategy).average_cost
    SimAccount.objects.filter(connection=strategy.broker_connection).update(
        cash=F("cash") + (held.quantity - D(quantity)) * price
    )
    SimPosition.objects.filter(pk=held.pk).update(quantity=D(quantity))


def test_a_drift_is_recorded_told_and_halts_the_symbol_until_the_owner_accepts_the_brokers_position(held, client):
    strategy, position = held
    connection = strategy.broker_connection
    assert not connection_reconcile(broker_connection=connection).has_drift
    broker_holds(strategy, 0, price="99.50")

    check = connection_reconcile(broker_connection=connection)

    symbol = strategy.symbol.symbol
    assert check.position_drift == [{"symbol": symbol, "ours": str(position.quantity), "broker": "0"}]
    connection.refresh_from_db()
    assert connection.drift_halted == [symbol]
    told = Notification.objects.get(kind=NotificationKind.DRIFT_FOUND)
    assert f"New entries on {symbol} are halted" in told.body

    # the symbol's runs are skipped before any analysis, the stop watch waits, a manual SELL is refused
    run = execute(execution_start(strategy=strategy, trigger="manual").pk)
    assert run.status == ExecutionStatus.SKIPPED
    assert strategy.executions.latest("started_at").skip_reason == SkipReason.DRIFT_HALT
    Position.objects.filter(pk=position.pk).update(stop_loss=D("1000"))  # the price is below the stop
    assert stops_watch() == []
    sell = manual_order_place(
        owner=strategy.owner,
        broker_connection=connection,
        symbol=strategy.symbol,
        side=OrderSide.SELL,
        quantity=D(1),
        order_type="MKT",
    )
    assert sell.status == OrderStatus.REJECTED
    assert "exits wait until the difference is resolved" in sell.status_reason

    # shown on the dashboard and the portfolio page, with the owner's way out
    client.force_login(strategy.owner)
    for page in ("dashboard", "portfolio"):
        html = client.get(reverse(page)).content.decode()
        assert "Books drift from the broker" in html
        assert "Accept the broker&#x27;s position (0)" in html or "Accept the broker's position (0)" in html

    response = client.post(
        reverse("portfolio_drift_accept", args=[check.pk]), {"symbol": symbol, "price": "99.50"}, follow=True
    )

    assert response.status_code == 200
    [adjusting] = Trade.objects.filter(broker_execution_id=f"recon-{check.pk}")
    assert adjusting.order.source == OrderSource.RECONCILIATION
    assert adjusting.order.side == OrderSide.SELL
    assert adjusting.quantity == position.quantity
    assert adjusting.price == D("99.50")
    assert adjusting.order.broker_order_id == ""  # booked, never sent
    position.refresh_from_db()
    assert position.quantity == 0 and position.closed_at is not None
    assert positions_disagreeing() == []
    connection.refresh_from_db()
    assert connection.drift_halted == []
    check.refresh_from_db()
    assert check.resolutions[0]["symbol"] == symbol
    assert check.resolutions[0]["by"] == strategy.owner.username

    again = connection_reconcile(broker_connection=connection)
    assert not again.has_drift
    assert "Books drift from the broker" not in client.get(reverse("portfolio")).content.decode()


def test_accepting_the_broker_twice_or_a_replaced_check_changes_nothing(held):
    strategy, position = held
    broker_holds(strategy, 3)
    first = connection_reconcile(broker_connection=strategy.broker_connection)
    drift_accept_broker(reconciliation=first, symbol=strategy.symbol.symbol, by=strategy.owner)

    with pytest.raises(ResolutionError, match="resolved already"):
        drift_accept_broker(reconciliation=first, symbol=strategy.symbol.symbol, by=strategy.owner)
    with pytest.raises(ResolutionError, match="no difference in ZZZ"):
        drift_accept_broker(reconciliation=first, symbol="ZZZ", by=strategy.owner)

    position.refresh_from_db()
    assert position.quantity == 3  # sold down to the broker's 3, at the average cost: nothing realised
    assert position.realized_pnl == 0
    assert Trade.objects.filter(broker_execution_id__startswith="recon-").count() == 1
    assert not connection_reconcile(broker_connection=strategy.broker_connection).has_drift


def test_the_broker_holding_more_is_booked_as_an_adjusting_buy(held):
    strategy, position = held
    broker_holds(strategy, position.quantity + 4)
    check = connection_reconcile(broker_connection=strategy.broker_connection)

    [trade] = drift_accept_broker(reconciliation=check, symbol=strategy.symbol.symbol, by=strategy.owner)

    assert trade.order.side == OrderSide.BUY and trade.quantity == 4
    position.refresh_from_db()
    assert position.quantity == D(check.position_drift[0]["broker"]) and positions_disagreeing() == []
    assert not connection_reconcile(broker_connection=strategy.broker_connection).has_drift


def test_a_bad_price_on_the_accept_form_is_said_in_words_and_changes_nothing(held, client):
    strategy, position = held
    broker_holds(strategy, 0)
    check = connection_reconcile(broker_connection=strategy.broker_connection)
    client.force_login(strategy.owner)

    response = client.post(
        reverse("portfolio_drift_accept", args=[check.pk]),
        {"symbol": strategy.symbol.symbol, "price": "abc"},
        follow=True,
    )

    assert response.status_code == 200
    assert "The price must be a number" in response.content.decode()
    assert not Trade.objects.filter(broker_execution_id__startswith="recon-").exists()
    assert Position.objects.get(pk=position.pk).quantity == position.quantity


def test_someone_elses_reconciliation_cannot_be_resolved(held, client, django_user_model):
    strategy, _ = held
    broker_holds(strategy, 0)
    check = connection_reconcile(broker_connection=strategy.broker_connection)
    client.force_login(django_user_model.objects.create_user("mallory", password="x"))

    response = client.post(reverse("portfolio_drift_accept", args=[check.pk]), {"symbol": strategy.symbol.symbol})

    assert response.status_code == 404
    assert not Trade.objects.filter(broker_execution_id__startswith="recon-").exists()


def test_an_exit_is_cut_to_what_the_broker_holds_and_refused_when_it_holds_nothing(held):
    # before any check has seen the difference, the exit itself asks the broker
    strategy, position = held
    broker_holds(strategy, 2)

    cut = position_exit_place(position=position, limit_price=D("99"), source=OrderSource.STRATEGY)

    assert cut.quantity == 2
    assert (
        f"cut from {position.quantity.normalize():f} to the 2 the broker holds"
        in cut.status_changes.order_by("pk").last().reason
    )
    Order.objects.filter(pk=cut.pk).update(status=OrderStatus.CANCELLED)
    broker_holds(strategy, 0)
    refused = position_exit_place(position=position, limit_price=D("99"), source=OrderSource.STRATEGY)
    assert refused.status == OrderStatus.REJECTED
    assert refused.status_reason.startswith(f"the broker holds 0 {strategy.symbol.symbol}")
    assert "would open a short" in refused.status_reason


def test_cash_that_differs_and_an_order_we_did_not_place_are_drift_too(held):
    strategy, _ = held
    connection = strategy.broker_connection
    SimAccount.objects.filter(connection=connection).update(cash=D("5"))

    check = connection_reconcile(broker_connection=connection)

    [cash] = check.other_drift
    assert cash["kind"] == "cash" and cash["broker"] == "5.00"
    assert check.cash_ours == D(cash["ours"])
    assert BrokerConnection.objects.get(pk=connection.pk).drift_halted == []  # cash halts no symbol
    assert Reconciliation.objects.filter(broker_connection=connection).count() == 1
