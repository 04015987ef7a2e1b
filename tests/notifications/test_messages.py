"""How notifications read: quantities as a person writes them, prices and amounts as money; and a mail server that
fails is a failed delivery with its reason, never an error in the caller."""

from __future__ import annotations

from decimal import Decimal

import pytest

from notifications.models import DeliveryState, Notification
from tests.factories import OrderFactory, StrategyExecutionFactory, TradeFactory
from trading.notifications import notify_fill, notify_rejection, notify_run_failed

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("quantity", "shown"),
    [("76", "76"), ("0.5", "0.5"), ("1250", "1250")],
    ids=["whole-shares", "fraction", "no-exponent"],
)
def test_a_rejection_subject_shows_the_quantity_without_trailing_zeros(quantity, shown):
    # given a rejected order as stored (quantities have six decimal places)
    order = OrderFactory(side="SELL", quantity=Decimal(quantity), status="REJECTED", status_reason="no margin")
    order.refresh_from_db()

    # when it is notified
    notify_rejection(order=order)

    # then the subject reads as a person writes it, and the body says why
    stored = Notification.objects.get()
    assert stored.subject == f"Rejected: SELL {shown} {order.symbol.symbol}"
    assert stored.body == f"Order {order.client_order_id} was rejected: no margin."
    assert (stored.kind, stored.order, stored.owner) == ("order_rejected", order, order.owner)


@pytest.mark.parametrize(
    ("price", "shown_price"),
    [("101.25", "101.25"), ("99.5", "99.50"), ("1234", "1,234.00"), ("0.1234", "0.1234")],
    ids=["cents", "trailing-cent", "thousands", "sub-cent"],
)
def test_a_fill_shows_its_quantity_plainly_and_its_prices_as_money(price, shown_price):
    trade = TradeFactory(
        quantity=Decimal("76"), price=Decimal(price), commission=Decimal("1"), realized_pnl=Decimal("-3.1")
    )
    trade.refresh_from_db()

    notify_fill(trade=trade)

    stored = Notification.objects.get()
    symbol = trade.order.symbol.symbol
    assert stored.subject == f"Filled: {trade.order.side} 76 {symbol} @ {shown_price}"
    assert f"filled at {shown_price} " in stored.body
    assert "Realised P&L of this fill: -3.10. Commission: 1.00." in stored.body
    assert (stored.order, stored.strategy_id, stored.execution) == (trade.order, trade.order.strategy_id, None)


def test_a_mail_server_that_fails_is_a_failed_delivery_with_its_reason(
    settings, celery_eager, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2  # nothing listens there
    execution = StrategyExecutionFactory(status="FAILED", error="boom")

    with django_capture_on_commit_callbacks(execute=True):
        notification = notify_run_failed(execution=execution)

    [delivery] = notification.deliveries.all()
    assert delivery.state == DeliveryState.FAILED
    assert "Mail not sent" in delivery.error and "refused" in delivery.error.lower()
