"""Notifications on fills, rejections and failed runs: mail through Django (EMAIL_URL) to the owner, and a JSON POST
to NOTIFY_WEBHOOK_URL when it is set. A notification that cannot be delivered is logged, never raised: it must not
fail the fill or the run it reports."""

from __future__ import annotations

import logging

import requests
from django.conf import settings
from django.core.mail import send_mail

from lineage.services import json_safe

logger = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_SECONDS = 5


def notify(*, user, event: str, subject: str, body: str, data: dict | None = None) -> dict:
    """Send one notification; returns what was delivered ({"email": bool, "webhook": bool, "errors": [...]})."""
    delivered: dict = {"email": False, "webhook": False, "errors": []}
    if user is not None and user.email:
        try:
            send_mail(f"[trading] {subject}", body, settings.DEFAULT_FROM_EMAIL, [user.email], fail_silently=False)
            delivered["email"] = True
        except Exception as exc:
            logger.warning("notification mail (%s) not sent: %s", event, exc)
            delivered["errors"].append(f"email: {exc}")
    if settings.NOTIFY_WEBHOOK_URL:
        payload = {"event": event, "subject": subject, "text": body, "user": getattr(user, "username", None)}
        payload["data"] = json_safe(data or {})
        try:
            response = requests.post(settings.NOTIFY_WEBHOOK_URL, json=payload, timeout=WEBHOOK_TIMEOUT_SECONDS)
            response.raise_for_status()
            delivered["webhook"] = True
        except requests.RequestException as exc:
            logger.warning("notification webhook (%s) failed: %s", event, exc)
            delivered["errors"].append(f"webhook: {exc}")
    return delivered


def notify_fill(*, trade) -> dict:
    order = trade.order
    subject = f"Filled: {order.side} {trade.quantity} {order.symbol.symbol} @ {trade.price}"
    body = (
        f"{order.side} {trade.quantity} {order.symbol.symbol} filled at {trade.price} "
        f"(order {order.client_order_id}, {order.get_leg_display()}, status {order.status}).\n"
        f"Realised P&L of this fill: {trade.realized_pnl}. Commission: {trade.commission}."
    )
    return notify(
        user=order.owner,
        event="fill",
        subject=subject,
        body=body,
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
    subject = f"Rejected: {order.side} {order.quantity} {order.symbol.symbol}"
    body = f"Order {order.client_order_id} was rejected: {order.status_reason or 'no reason given'}."
    return notify(
        user=order.owner,
        event="rejection",
        subject=subject,
        body=body,
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
        event="run_failed",
        subject=subject,
        body=body,
        data={"execution_id": execution.pk, "strategy_id": strategy.pk, "error": execution.error},
    )
