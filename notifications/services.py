"""Writes of the notifications app: `notify` (store, route, queue), channels (add, change, remove, test), and one
delivery attempt (what the `notifications.deliver` task calls).

`notify` never fails its caller: a run, a fill or a keep-alive that reports something goes on whatever happens here.
Sending is never done inline: each delivery is a task, queued once the caller's transaction commits."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from notifications.apprise_client import (
    ACCOUNT_MAIL,
    Sent,
    account_mail,
    mask,
    refusal,
    send,
    webhook_alias,
)
from notifications.models import Channel, Delivery, DeliveryState, Notification, NotificationKind, default_kinds

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
#: seconds before the 2nd, 3rd, 4th and 5th attempt
RETRY_DELAYS = (30, 120, 600, 1800)
MAIL_KEY, WEBHOOK_KEY = "mail", "webhook"


@dataclass(frozen=True)
class Target:
    """Where one notification goes: a user's channel, or one of the server's defaults (`default_key`)."""

    channel: Channel | None
    default_key: str
    destination: str


# --- routing -------------------------------------------------------------------------------------------------------


def server_defaults(owner: Any) -> list[Target]:
    """What a user who lists no channel of their own hears on: every NOTIFY_URLS entry, the NOTIFY_WEBHOOK_URL
    alias, and mail to their account address when they have one. Every kind goes to each."""
    targets = [Target(None, _url_key(url), mask(url)) for url in settings.NOTIFY_URLS]
    if settings.NOTIFY_WEBHOOK_URL:
        targets.append(Target(None, WEBHOOK_KEY, mask(webhook_alias(settings.NOTIFY_WEBHOOK_URL))))
    if owner.email:
        targets.append(Target(None, MAIL_KEY, f"mail to {owner.email}"))
    return targets


def targets_for(owner: Any, kind: str) -> list[Target]:
    channels = list(Channel.objects.for_owner(owner))
    if not channels:
        return server_defaults(owner)
    return [Target(channel, "", channel.label[:255]) for channel in channels if channel.routes(kind)]


# --- notify ----------------------------------------------------------------------------------------------------------


def notify(
    *,
    owner: Any,
    kind: NotificationKind | str,
    subject: str,
    body: str,
    path: str = "",
    data: dict | None = None,
    strategy: Any = None,
    order: Any = None,
    execution: Any = None,
) -> Notification | None:
    """Store one notification with a delivery per channel its kind is routed to, and queue the deliveries once the
    caller commits. `path` is the page it links to (made absolute with SITE_URL; no SITE_URL, no link). A replay's
    rows notify nobody: a replay is research on history. Returns the stored notification, or None."""
    if owner is None or any(getattr(row, "is_replay", False) for row in (strategy, order, execution)):
        return None
    try:
        with transaction.atomic():  # a savepoint: a failure here leaves a caller's own transaction usable
            notification = Notification.objects.create(
                owner=owner,
                kind=str(kind),
                subject=subject[:255],
                body=body,
                link=site_link(path),
                data=_json_ready(data or {}),
                strategy=strategy,
                order=order,
                execution=execution,
            )
            deliveries = Delivery.objects.bulk_create(
                Delivery(
                    notification=notification,
                    channel=target.channel,
                    default_key=target.default_key,
                    destination=target.destination,
                )
                for target in targets_for(owner, str(kind))
            )
    except Exception:
        logger.exception("notification (%s) not stored", kind)
        return None
    ids = [delivery.pk for delivery in deliveries]
    transaction.on_commit(lambda: deliveries_enqueue(ids), robust=True)
    return notification


def deliveries_enqueue(delivery_ids: Iterable[int]) -> None:
    """Queue one task per delivery. A broker that is down leaves them pending: `deliveries_resend` finds them."""
    task = current_app.tasks["notifications.deliver"]  # by name: the task module imports this one
    for delivery_id in delivery_ids:
        try:
            task.apply_async(args=[delivery_id])
        except Exception:
            logger.exception("delivery %s not queued; it is sent again by the next sweep", delivery_id)


def deliveries_resend(*, now: dt.datetime, grace: dt.timedelta = dt.timedelta(minutes=10)) -> list[int]:
    """Pending deliveries whose next attempt is long overdue (their task was lost): queue them again. An attempt
    claims its delivery by its attempt count, so a task that turns up late as well sends nothing twice."""
    ids = list(Delivery.objects.pending().filter(next_attempt_at__lt=now - grace).values_list("pk", flat=True)[:500])
    deliveries_enqueue(ids)
    return ids


def site_link(path: str) -> str:
    base = settings.SITE_URL.rstrip("/")
    return f"{base}{path}" if base and path else ""


# --- one attempt -----------------------------------------------------------------------------------------------------


def delivery_attempt(*, delivery: Delivery, now: dt.datetime | None = None) -> float | None:
    """Try one delivery once. Returns the seconds to wait before trying again, or None when it is done (sent,
    failed for good, or already in another attempt's hands)."""
    now = now or timezone.now()
    claimed = Delivery.objects.filter(pk=delivery.pk, state=DeliveryState.PENDING, attempts=delivery.attempts).update(
        attempts=F("attempts") + 1, updated_at=now
    )
    if not claimed:
        return None
    delivery.attempts += 1
    notification = delivery.notification
    url, problem = _url_of(delivery)
    if problem:
        sent, final = Sent(ok=False, error=problem), True
    else:
        sent = send(url, title=notification.subject, body=_text(notification), json_fields=_json_fields(delivery))
        final = delivery.attempts >= MAX_ATTEMPTS
    if sent.ok:
        delivery.state, delivery.sent_at, delivery.error, delivery.next_attempt_at = DeliveryState.SENT, now, "", None
    elif final:
        delivery.state, delivery.error, delivery.next_attempt_at = DeliveryState.FAILED, sent.error, None
    else:
        delay = RETRY_DELAYS[min(delivery.attempts, len(RETRY_DELAYS)) - 1]
        delivery.error, delivery.next_attempt_at = sent.error, now + dt.timedelta(seconds=delay)
    delivery.updated_at = now
    delivery.save(update_fields=["state", "sent_at", "error", "next_attempt_at", "updated_at"])
    if delivery.channel_id and (sent.ok or final):
        _channel_outcome(delivery.channel_id, sent, now=now)
    return None if sent.ok or final else float(delay)


def _url_of(delivery: Delivery) -> tuple[str, str]:
    """The URL to send to, or why there is none."""
    owner = delivery.notification.owner
    channel = delivery.channel
    if channel is not None:
        if channel.url == ACCOUNT_MAIL:
            return (account_mail(owner.email), "") if owner.email else ("", "Your account has no email address.")
        problem = refusal(channel.url, allow_private=settings.NOTIFY_ALLOW_PRIVATE_HOSTS)  # names can move
        return channel.url, problem or ""
    if delivery.default_key == MAIL_KEY:
        return (account_mail(owner.email), "") if owner.email else ("", "Your account has no email address.")
    if delivery.default_key == WEBHOOK_KEY:
        if settings.NOTIFY_WEBHOOK_URL:
            return webhook_alias(settings.NOTIFY_WEBHOOK_URL), ""
        return "", "NOTIFY_WEBHOOK_URL is no longer set."
    if not delivery.default_key:
        return "", "The channel was removed."
    for url in settings.NOTIFY_URLS:
        if _url_key(url) == delivery.default_key:
            return url, ""
    return "", "This NOTIFY_URLS entry is no longer set."


def _text(notification: Notification) -> str:
    return f"{notification.body}\n\n{notification.link}" if notification.link else notification.body


def _json_fields(delivery: Delivery) -> dict | None:
    """The webhook alias keeps the payload it always had: the event, the user's name and the event's data."""
    if delivery.default_key != WEBHOOK_KEY:
        return None
    notification = delivery.notification
    data = dict(notification.data)
    if notification.link:
        data.setdefault("link", notification.link)
    return {"event": notification.kind, "user": notification.owner.username, "data": data}


def _channel_outcome(channel_id: int, sent: Sent, *, now: dt.datetime) -> None:
    if sent.ok:
        Channel.objects.filter(pk=channel_id).update(failures=0, last_error="", last_sent_at=now)
    else:
        Channel.objects.filter(pk=channel_id).update(
            failures=F("failures") + 1, last_error=sent.error, last_failed_at=now
        )


def _url_key(url: str) -> str:
    return "url:" + hashlib.sha256(url.encode()).hexdigest()[:32]


def _json_ready(data: dict) -> dict:
    """Decimals, datetimes and UUIDs as the strings a JSON reader expects (Decimal("101.25") -> "101.25")."""
    return {key: _json_value(value) for key, value in data.items()}


def _json_value(value: Any) -> Any:
    if isinstance(value, dict):
        return _json_ready(value)
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


# --- channels --------------------------------------------------------------------------------------------------------


def _kinds_checked(kinds: Iterable[str] | None) -> list[str]:
    chosen = list(default_kinds() if kinds is None else kinds)
    unknown = sorted(set(chosen) - set(NotificationKind.values))
    if unknown:
        raise ValidationError({"kinds": f"Unknown kinds: {', '.join(unknown)}."})
    return [kind for kind in NotificationKind.values if kind in chosen]


def channel_add(*, owner: Any, url: str, name: str = "", kinds: Iterable[str] | None = None) -> Channel:
    """A new channel for `owner`. Raises ValidationError (on `url` or `kinds`) and stores nothing when the URL is
    not one Apprise knows, or points at a loopback or private host while NOTIFY_ALLOW_PRIVATE_HOSTS is off."""
    url = url.strip()
    problem = refusal(url, allow_private=settings.NOTIFY_ALLOW_PRIVATE_HOSTS) if url else "Enter an Apprise URL."
    if problem:
        raise ValidationError({"url": problem})
    return Channel.objects.create(
        owner=owner, url=url, masked=mask(url), name=name.strip()[:80], kinds=_kinds_checked(kinds)
    )


def channel_update(*, channel: Channel, kinds: Iterable[str], enabled: bool, name: str | None = None) -> Channel:
    channel.kinds = _kinds_checked(kinds)
    channel.enabled = enabled
    if name is not None:
        channel.name = name.strip()[:80]
    channel.save(update_fields=["kinds", "enabled", "name"])
    return channel


def channel_remove(*, channel: Channel) -> None:
    channel.delete()


def channel_test(*, channel: Channel, now: dt.datetime | None = None) -> Sent:
    """Send a test message now, while the user waits, and keep its outcome on the channel (a success clears the
    "keeps failing" flag). Not stored as a notification: it reports nothing that happened."""
    owner = channel.owner
    if channel.url == ACCOUNT_MAIL:
        if not owner.email:
            return Sent(ok=False, error="Your account has no email address.")
        url = account_mail(owner.email)
    else:
        url = channel.url
    problem = refusal(channel.url, allow_private=settings.NOTIFY_ALLOW_PRIVATE_HOSTS)
    sent = (
        Sent(ok=False, error=problem)
        if problem
        else send(
            url,
            title="Test from trading",
            body=f"A test notification for {owner.username}: this channel works.{_link_line('/settings/')}",
        )
    )
    _channel_outcome(channel.pk, sent, now=now or timezone.now())
    return sent


def _link_line(path: str) -> str:
    link = site_link(path)
    return f"\n\n{link}" if link else ""
