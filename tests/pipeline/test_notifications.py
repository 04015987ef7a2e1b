"""Notifications: Django mail through EMAIL_URL's backend and the optional JSON webhook (NOTIFY_WEBHOOK_URL)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import responses
from django.core import mail

from tests.factories import OrderFactory, StrategyExecutionFactory, TradeFactory
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

    assert delivered == {"email": True, "webhook": True, "errors": []}
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

    assert notify_run_failed(execution=execution) == {"email": True, "webhook": False, "errors": []}
