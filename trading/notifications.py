"""Notifications on fills, rejections and failed runs: mail through Django (EMAIL_URL) to the owner, and a JSON POST
to NOTIFY_WEBHOOK_URL when it is set. Each one is stored as a Notification row with what every channel did (the
/logs/ page lists them). A notification that cannot be delivered is recorded and logged, never raised: it must not
fail the fill or the run it reports."""

from __future__ import annotations

import logging
from decimal import ROUND_HALF_UP, Decimal

import requests
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

from lineage.services import json_safe
from trading.models import Delivery, Notification, NotificationKind, Strategy

logger = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_SECONDS = 5
CENT = Decimal("0.01")


def notify(
    *,
    user,
    event: str,
    subject: str,
    body: str,
    data: dict | None = None,
    order=None,
    execution=None,
    strategy=None,
) -> dict:
    """Send one notification and store it; returns what was delivered ({"email": bool, "webhook": bool,
    "errors": [...], "notification_id": int | None}). A replay's runs and orders notify nobody: a replay is research
    on history, and its copy of the strategy never trades."""
    delivered: dict = {"email": False, "webhook": False, "errors": []}
    if strategy is not None and not Strategy.objects.filter(pk=strategy.pk).exists():
        delivered["notification_id"] = None
        return delivered
    email = webhook = Delivery.SKIPPED
    email_error = webhook_error = ""
    if user is not None and user.email:
        try:
            send_mail(f"[trading] {subject}", body, settings.DEFAULT_FROM_EMAIL, [user.email], fail_silently=False)
            delivered["email"], email = True, Delivery.SENT
        except Exception as exc:
            logger.warning("notification mail (%s) not sent: %s", event, exc)
            email, email_error = Delivery.FAILED, str(exc)
            delivered["errors"].append(f"email: {exc}")
    if settings.NOTIFY_WEBHOOK_URL:
        payload = {"event": event, "subject": subject, "text": body, "user": getattr(user, "username", None)}
        payload["data"] = json_safe(data or {})
        try:
            response = requests.post(settings.NOTIFY_WEBHOOK_URL, json=payload, timeout=WEBHOOK_TIMEOUT_SECONDS)
            response.raise_for_status()
            delivered["webhook"], webhook = True, Delivery.SENT
        except Exception as exc:  # any failure to deliver is recorded: a notification never fails its caller
            logger.warning("notification webhook (%s) failed: %s", event, exc)
            webhook, webhook_error = Delivery.FAILED, str(exc)
            delivered["errors"].append(f"webhook: {exc}")
    delivered["notification_id"] = _record(
        user=user,
        kind=event,
        subject=subject,
        body=body,
        order=order,
        execution=execution,
        strategy=strategy,
        email_result=email,
        email_error=email_error,
        webhook_result=webhook,
        webhook_error=webhook_error,
    )
    return delivered


def _record(*, user, kind: str, subject: str, **fields) -> int | None:
    """The stored copy of what was sent. Keeping it must not fail the caller either: a row that cannot be written
    is logged (the mail and the webhook have gone out already), not raised."""
    if user is None:
        return None
    try:
        with transaction.atomic():  # a savepoint: a failed insert leaves a caller's own transaction usable
            return Notification.objects.create(owner=user, kind=kind, subject=subject[:255], **fields).pk
    except Exception:
        logger.exception("notification (%s) sent but not stored", kind)
        return None


def quantity_text(value) -> str:
    """A quantity as a person writes it: 76, 0.5 (the stored 76.000000 without its trailing zeros)."""
    if value is None:
        return "-"
    return format(Decimal(value).normalize(), "f")


def money_text(value) -> str:
    """An amount as money, to the cent: 1,234.50, -3.10."""
    if value is None:
        return "-"
    return f"{Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP):,f}"


def price_text(value) -> str:
    """A price as money (99.50, 1,234.50); a sub-cent price keeps its digits (0.1234)."""
    if value is None:
        return "-"
    amount = Decimal(value)
    cents = amount.quantize(CENT, rounding=ROUND_HALF_UP)
    return f"{cents if cents == amount else amount.normalize():,f}"


def notify_fill(*, trade) -> dict:
    order = trade.order
    quantity, price = quantity_text(trade.quantity), price_text(trade.price)
    subject = f"Filled: {order.side} {quantity} {order.symbol.symbol} @ {price}"
    body = (
        f"{order.side} {quantity} {order.symbol.symbol} filled at {price} "
        f"(order {order.client_order_id}, {order.get_leg_display()}, status {order.status}).\n"
        f"Realised P&L of this fill: {money_text(trade.realized_pnl)}. Commission: {money_text(trade.commission)}."
    )
    return notify(
        user=order.owner,
        event=NotificationKind.FILL,
        subject=subject,
        body=body,
        order=order,
        strategy=order.strategy,
        data={
            "order_id": order.pk,
            "client_order_id": order.client_order_id,
            "strategy_id": order.strategy_id,
            "symbol": order.symbol.symbol,
            "side": order.side,
            "quantity": trade.quantity,
            "price": trade.price,
            "realized_pnl": trade.realized_pnl,
            "executed_at": trade.executed_at,
        },
    )


def notify_rejection(*, order) -> dict:
    subject = f"Rejected: {order.side} {quantity_text(order.quantity)} {order.symbol.symbol}"
    body = f"Order {order.client_order_id} was rejected: {order.status_reason or 'no reason given'}."
    return notify(
        user=order.owner,
        event=NotificationKind.REJECTION,
        subject=subject,
        body=body,
        order=order,
        strategy=order.strategy,
        data={
            "order_id": order.pk,
            "client_order_id": order.client_order_id,
            "strategy_id": order.strategy_id,
            "reason": order.status_reason,
        },
    )


def notify_run_failed(*, execution) -> dict:
    strategy = execution.strategy
    subject = f"Run failed: {strategy.name}"
    body = f"The run {execution.pk} of {strategy.name} failed.\n\n{execution.error}"
    return notify(
        user=strategy.owner,
        event=NotificationKind.RUN_FAILED,
        subject=subject,
        body=body,
        execution=execution,
        strategy=strategy,
        data={"execution_id": execution.pk, "strategy_id": strategy.pk, "error": execution.error},
    )
