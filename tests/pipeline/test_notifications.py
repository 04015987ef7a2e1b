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
