"""Notifications through Apprise: what reaches a local JSON endpoint and Django's locmem mail, the webhook alias's
payload, per-kind routing, retries, and the delivery state kept for each channel."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone

from notifications.models import Channel, Delivery, DeliveryState, Notification, NotificationKind
from notifications.services import MAX_ATTEMPTS, channel_add, deliveries_resend, notify
from tests.factories import OrderFactory, StrategyExecutionFactory, TradeFactory, UserFactory
from trading.notifications import notify_fill, notify_rejection, notify_run_failed

pytestmark = pytest.mark.django_db

EXPECTED_KINDS = [
    "approval_needed",
    "order_filled",
    "order_rejected",
    "stop_hit",
    "target_hit",
    "drift_found",
    "session_down",
    "session_login_needed",
    "session_restored",
    "run_failed",
    "run_skipped",
    "spend_cap_reached",
    "protection_halt",
    "worker_silent",
    "daily_summary",
]


@pytest.fixture
def delivered(celery_eager, django_capture_on_commit_callbacks):
    """Call `fn`, then run what it queued once it commits, inline, as a worker would."""

    def run(fn, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(**kwargs)

    return run


@pytest.fixture
def private_hosts_allowed(settings):
    settings.NOTIFY_ALLOW_PRIVATE_HOSTS = True  # the local endpoint is on loopback


def test_the_kinds_are_exactly_the_ones_traders_are_told_about():
    assert NotificationKind.values == EXPECTED_KINDS


# --- the server's defaults -----------------------------------------------------------------------------------------


def test_the_webhook_alias_posts_the_payload_it_always_had(settings, endpoint, delivered):
    # given NOTIFY_WEBHOOK_URL (not a private-host check: the operator sets it) and a fill
    settings.NOTIFY_WEBHOOK_URL = endpoint.http_url + "?token=abc"
    trade = TradeFactory(price=Decimal("101.25"), realized_pnl=Decimal("0"))

    # when it is notified and the deliveries run
    notification = delivered(notify_fill, trade=trade)

    # then the endpoint got exactly today's keys, with the event, the user and the data
    [request] = endpoint.received
    assert request.path == "/hook?token=abc"
    assert set(request.body) == {"event", "subject", "text", "user", "data"}
    assert request.body["event"] == "order_filled"
    assert request.body["user"] == trade.order.owner.username
    assert request.body["subject"] == f"Filled: BUY 10 {trade.order.symbol.symbol} @ 101.25"
    assert "filled at 101.25" in request.body["text"]
    assert request.body["data"]["price"] == "101.25"
    assert request.body["data"]["order_id"] == trade.order_id
    assert [d.state for d in notification.deliveries.all()] == [DeliveryState.SENT, DeliveryState.SENT]


def test_a_user_without_channels_is_mailed_through_django_and_gets_every_notify_urls_entry(
    settings, endpoint, delivered
):
    settings.NOTIFY_URLS = [endpoint.url()]
    order = OrderFactory(status="REJECTED", status_reason="limit 150 is more than 3% from the last price 100")

    notification = delivered(notify_rejection, order=order)

    assert mail.outbox[0].to == [order.owner.email]
    assert mail.outbox[0].subject == f"[trading] Rejected: BUY 10 {order.symbol.symbol}"
    assert "more than 3%" in mail.outbox[0].body
    [request] = endpoint.received
    assert request.body["title"] == f"Rejected: BUY 10 {order.symbol.symbol}"  # Apprise's own JSON shape
    assert "more than 3%" in request.body["message"]
    destinations = sorted(d.destination for d in notification.deliveries.all())
    assert destinations == sorted([f"json://127.0.0.1:{endpoint.port}/hook", f"mail to {order.owner.email}"])


def test_without_site_url_a_message_has_no_link_and_with_it_the_link_is_absolute(settings, delivered):
    execution = StrategyExecutionFactory(status="FAILED", error="llm_analysis: timed out")
    delivered(notify_run_failed, execution=execution)
    assert "http" not in mail.outbox[-1].body

    settings.SITE_URL = "https://trading.example.com/"
    notification = delivered(notify_run_failed, execution=execution)

    assert notification.link == f"https://trading.example.com/lineage/?execution={execution.pk}"
    assert mail.outbox[-1].body.endswith(notification.link)


# --- a user's channels and the routing of kinds -------------------------------------------------------------------


def test_apprise_sends_to_a_users_json_channel_and_the_channel_replaces_the_defaults(
    private_hosts_allowed, endpoint, delivered
):
    trade = TradeFactory()
    channel = channel_add(owner=trade.order.owner, url=endpoint.url(), name="desk")

    notification = delivered(notify_fill, trade=trade)

    [request] = endpoint.received
    assert request.body["title"].startswith("Filled: BUY 10")
    assert mail.outbox == []  # the user chose their channels: the account mail default is off
    [delivery] = notification.deliveries.all()
    assert (delivery.channel, delivery.state, delivery.attempts) == (channel, DeliveryState.SENT, 1)
    channel.refresh_from_db()
    assert channel.last_sent_at is not None and channel.failures == 0


def test_each_kind_goes_only_to_the_channels_it_is_routed_to(private_hosts_allowed, endpoint, delivered):
    owner = UserFactory()
    fills = channel_add(owner=owner, url=endpoint.url(path="/fills"), kinds=["order_filled", "stop_hit"])
    failures = channel_add(owner=owner, url=endpoint.url(path="/failures"), kinds=["run_failed"])
    switched_off = channel_add(owner=owner, url=endpoint.url(path="/off"))
    switched_off.enabled = False
    switched_off.save()

    delivered(notify, owner=owner, kind=NotificationKind.ORDER_FILLED, subject="a fill", body="filled")
    delivered(notify, owner=owner, kind=NotificationKind.RUN_FAILED, subject="a failure", body="failed")
    delivered(notify, owner=owner, kind=NotificationKind.DAILY_SUMMARY, subject="the day", body="summary")

    assert [(r.path, r.body["title"]) for r in endpoint.received] == [("/fills", "a fill"), ("/failures", "a failure")]
    assert Delivery.objects.filter(channel=fills).count() == 1
    assert Delivery.objects.filter(channel=failures).count() == 1
    assert not Delivery.objects.filter(channel=switched_off).exists()
    summary = Notification.objects.get(kind="daily_summary")
    assert not summary.deliveries.exists()  # stored, shown on the page, sent nowhere


def test_a_new_channel_hears_every_kind_by_default(private_hosts_allowed, endpoint):
    channel = channel_add(owner=UserFactory(), url=endpoint.url())
    assert channel.kinds == EXPECTED_KINDS


def test_an_account_mail_channel_mails_the_owners_address(delivered):
    owner = UserFactory(email="trader@example.com")
    channel_add(owner=owner, url="djangomail://", kinds=["run_failed"])

    delivered(notify, owner=owner, kind=NotificationKind.RUN_FAILED, subject="Run failed: swing", body="boom")

    assert [(m.to, m.subject) for m in mail.outbox] == [(["trader@example.com"], "[trading] Run failed: swing")]


# --- never in the way: retries, failures, flags --------------------------------------------------------------------


def test_a_delivery_that_fails_is_tried_again_and_sent_once_the_endpoint_answers(
    private_hosts_allowed, endpoint, delivered
):
    owner = UserFactory()
    channel = channel_add(owner=owner, url=endpoint.url())
    endpoint.answer(503, 503)  # then 200

    notification = delivered(notify, owner=owner, kind=NotificationKind.RUN_FAILED, subject="s", body="b")

    [delivery] = notification.deliveries.all()
    assert (delivery.state, delivery.attempts, delivery.error) == (DeliveryState.SENT, 3, "")
    assert len(endpoint.received) == 3
    channel.refresh_from_db()
    assert channel.failures == 0


def test_a_delivery_that_keeps_failing_is_failed_after_its_last_attempt_and_the_channel_is_flagged(
    private_hosts_allowed, endpoint, delivered
):
    owner = UserFactory()
    channel = channel_add(owner=owner, url=endpoint.url())

    for number in range(Channel.FLAG_AFTER):
        endpoint.answer(*[503] * MAX_ATTEMPTS)
        delivered(notify, owner=owner, kind=NotificationKind.RUN_FAILED, subject=f"s{number}", body="b")

    deliveries = list(Delivery.objects.filter(channel=channel))
    assert [(d.state, d.attempts) for d in deliveries] == [(DeliveryState.FAILED, MAX_ATTEMPTS)] * Channel.FLAG_AFTER
    assert "503" in deliveries[0].error
    assert len(endpoint.received) == MAX_ATTEMPTS * Channel.FLAG_AFTER
    channel.refresh_from_db()
    assert channel.flagged and channel.failures == Channel.FLAG_AFTER


def test_a_run_that_fails_only_queues_its_notification(private_hosts_allowed, endpoint, celery_eager):
    # given a channel that would answer slowly or not at all
    owner = UserFactory()
    channel_add(owner=owner, url=endpoint.url())
    execution = StrategyExecutionFactory(strategy__owner=owner, status="FAILED", error="boom")

    # when the run's failure is notified inside the run's transaction (nothing committed yet)
    notification = notify_run_failed(execution=execution)

    # then nothing was sent while the run waited: the delivery waits for the commit and a worker
    assert endpoint.received == []
    assert [d.state for d in notification.deliveries.all()] == [DeliveryState.PENDING]


def test_a_delivery_whose_task_was_lost_is_sent_by_the_sweep_once(private_hosts_allowed, endpoint, delivered):
    owner = UserFactory()
    channel_add(owner=owner, url=endpoint.url())
    notification = notify(owner=owner, kind=NotificationKind.RUN_FAILED, subject="lost", body="b")  # never queued
    late = timezone.now() + dt.timedelta(minutes=11)

    delivered(deliveries_resend, now=late)
    delivered(deliveries_resend, now=late)

    assert len(endpoint.received) == 1
    assert notification.deliveries.get().state == DeliveryState.SENT


def test_a_replays_rows_notify_nobody(private_hosts_allowed, endpoint, delivered):
    execution = StrategyExecutionFactory(status="FAILED", error="boom", strategy__is_replay=True, is_replay=True)

    assert delivered(notify_run_failed, execution=execution) is None
    assert endpoint.received == [] and mail.outbox == [] and not Notification.objects.exists()


def test_a_failed_send_logs_no_secret_and_its_error_is_scrubbed(private_hosts_allowed, endpoint, delivered, caplog):
    owner = UserFactory()
    secret_url = f"json://trader:hunter2secret@127.0.0.1:{endpoint.port}/hook-Tok3nSecretPath"
    channel_add(owner=owner, url=secret_url)
    endpoint.answer(*[500] * MAX_ATTEMPTS)

    with caplog.at_level(logging.DEBUG):
        notification = delivered(notify, owner=owner, kind=NotificationKind.RUN_FAILED, subject="s", body="b")

    delivery = notification.deliveries.get()
    assert delivery.state == DeliveryState.FAILED
    for secret in ("hunter2secret", "Tok3nSecretPath"):
        assert secret not in caplog.text
        assert secret not in delivery.error and secret not in delivery.destination
