"""Notifications: Django mail through EMAIL_URL's backend and the optional JSON webhook (NOTIFY_WEBHOOK_URL), each
stored as a Notification row with what every channel did."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import requests
import responses
from django.core import mail

from tests.factories import OrderFactory, StrategyExecutionFactory, TradeFactory, UserFactory
from trading.models import Notification
from trading.notifications import notify_fill, notify_rejection, notify_run_failed

pytestmark = pytest.mark.django_db
HOOK = "https://hooks.example.com/trading"


@pytest.fixture(autouse=True)
def mail_and_hook(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.NOTIFY_WEBHOOK_URL = HOOK


@responses.activate
def test_a_fill_is_mailed_to_the_owner_and_posted_to_the_webhook():
    responses.post(HOOK, json={"ok": True})
    trade = TradeFactory(price=Decimal("101.25"), realized_pnl=Decimal("0"))

    delivered = notify_fill(trade=trade)

    assert (delivered["email"], delivered["webhook"], delivered["errors"]) == (True, True, [])
    assert mail.outbox[0].to == [trade.order.owner.email]
    assert "101.25" in mail.outbox[0].subject
    payload = json.loads(responses.calls[0].request.body)
    assert (payload["event"], payload["data"]["price"], payload["data"]["order_id"]) == (
        "fill",
        "101.25",
        trade.order_id,
    )


@responses.activate
def test_a_rejection_says_why():
    responses.post(HOOK, json={})
    order = OrderFactory(status="REJECTED", status_reason="limit 150 is more than 3% from the last price 100")

    notify_rejection(order=order)

    assert "more than 3%" in mail.outbox[0].body
    assert json.loads(responses.calls[0].request.body)["data"]["reason"] == order.status_reason


@responses.activate
def test_a_failing_webhook_is_reported_not_raised_and_the_mail_still_goes():
    responses.post(HOOK, status=503)
    execution = StrategyExecutionFactory(status="FAILED", error="llm_analysis: LLMError: timed out")

    delivered = notify_run_failed(execution=execution)

    assert (delivered["email"], delivered["webhook"]) == (True, False)
    assert "503" in delivered["errors"][0]
    assert "timed out" in mail.outbox[0].body


def test_without_a_webhook_url_only_mail_is_sent(settings):
    settings.NOTIFY_WEBHOOK_URL = ""
    execution = StrategyExecutionFactory(status="FAILED", error="boom")

    delivered = notify_run_failed(execution=execution)

    assert (delivered["email"], delivered["webhook"], delivered["errors"]) == (True, False, [])
    assert Notification.objects.get(pk=delivered["notification_id"]).webhook_result == "skipped"


# --- the stored copy ----------------------------------------------------------------------------------------------


@responses.activate
def test_a_fill_is_stored_once_with_its_order_strategy_and_both_channels_sent():
    responses.post(HOOK, json={"ok": True})
    trade = TradeFactory(price=Decimal("101.25"), realized_pnl=Decimal("0"))

    delivered = notify_fill(trade=trade)

    stored = Notification.objects.get()
    assert stored.pk == delivered["notification_id"]
    assert (stored.owner, stored.kind, stored.order, stored.execution) == (trade.order.owner, "fill", trade.order, None)
    assert stored.strategy_id == trade.order.strategy_id
    assert "101.25" in stored.subject and "101.25" in stored.body
    assert (stored.email_result, stored.webhook_result, stored.webhook_error) == ("sent", "sent", "")


@responses.activate
def test_a_rejection_is_stored_with_its_order():
    responses.post(HOOK, json={})
    order = OrderFactory(status="REJECTED", status_reason="price band")

    notify_rejection(order=order)

    stored = Notification.objects.get()
    assert (stored.kind, stored.order, stored.owner) == ("rejection", order, order.owner)
    assert "price band" in stored.body


@responses.activate
def test_a_failing_webhook_is_stored_with_its_error_and_the_run_it_reports():
    responses.post(HOOK, status=503)
    execution = StrategyExecutionFactory(status="FAILED", error="llm_analysis: LLMError: timed out")

    notify_run_failed(execution=execution)

    stored = Notification.objects.get()
    assert (stored.kind, stored.execution, stored.strategy) == ("run_failed", execution, execution.strategy)
    assert (stored.email_result, stored.webhook_result) == ("sent", "failed")
    assert "503" in stored.webhook_error
    assert not stored.email_error


@responses.activate
def test_an_unreachable_webhook_is_stored_as_failed_not_raised():
    responses.post(HOOK, body=requests.ConnectionError("connection refused"))
    execution = StrategyExecutionFactory(status="FAILED", error="boom")

    delivered = notify_run_failed(execution=execution)

    assert delivered["webhook"] is False
    stored = Notification.objects.get()
    assert stored.webhook_result == "failed" and "connection refused" in stored.webhook_error


def test_an_owner_without_an_email_address_gets_a_stored_notification_with_no_mail(settings):
    settings.NOTIFY_WEBHOOK_URL = ""
    order = OrderFactory(owner=UserFactory(email=""), status="REJECTED", status_reason="no margin")

    notify_rejection(order=order)

    assert mail.outbox == []
    stored = Notification.objects.get()
    assert (stored.email_result, stored.webhook_result, stored.delivered) == ("skipped", "skipped", False)


def test_a_mail_server_that_fails_is_stored_as_failed_not_raised(settings):
    settings.NOTIFY_WEBHOOK_URL = ""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2  # nothing listens there
    execution = StrategyExecutionFactory(status="FAILED", error="boom")

    delivered = notify_run_failed(execution=execution)

    assert delivered["email"] is False
    stored = Notification.objects.get()
    assert stored.email_result == "failed" and stored.email_error


@pytest.mark.parametrize(
    ("quantity", "shown"),
    [("76", "76"), ("0.5", "0.5"), ("1250", "1250")],
    ids=["whole-shares", "fraction", "no-exponent"],
)
def test_a_rejection_subject_shows_the_quantity_without_trailing_zeros(quantity, shown):
    # given a rejected order as stored (quantities have six decimal places)
    order = OrderFactory(side="SELL", quantity=Decimal(quantity), status="REJECTED", status_reason="no")
    order.refresh_from_db()

    # when it is notified
    notify_rejection(order=order)

    # then the subject reads as a person writes it
    assert mail.outbox[0].subject == f"[trading] Rejected: SELL {shown} {order.symbol.symbol}"
    assert Notification.objects.get().subject == f"Rejected: SELL {shown} {order.symbol.symbol}"


@pytest.mark.parametrize(
    ("price", "shown_price"),
    [("101.25", "101.25"), ("99.5", "99.50"), ("1234", "1,234.00"), ("0.1234", "0.1234")],
    ids=["cents", "trailing-cent", "thousands", "sub-cent"],
)
def test_a_fill_shows_its_quantity_plainly_and_its_prices_as_money(price, shown_price):
    # given a fill as stored
    trade = TradeFactory(
        quantity=Decimal("76"), price=Decimal(price), commission=Decimal("1"), realized_pnl=Decimal("-3.1")
    )
    trade.refresh_from_db()

    # when it is notified
    notify_fill(trade=trade)

    # then the quantity has no trailing zeros and prices and amounts read as money
    symbol = trade.order.symbol.symbol
    assert mail.outbox[0].subject == f"[trading] Filled: {trade.order.side} 76 {symbol} @ {shown_price}"
    assert f"filled at {shown_price} " in mail.outbox[0].body
    assert "Realised P&L of this fill: -3.10. Commission: 1.00." in mail.outbox[0].body
