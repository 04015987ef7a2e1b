"""Celery tasks of the brokers: IBKR session keep-alives (the beat's schedule: config/celery.py)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from brokers.ibkr import session_keepalive
from brokers.models import BrokerConnection, BrokerKind
from core.coordination import LockTimeout, lock


@shared_task(name="brokers.ibkr_keepalive", ignore_result=True)
def ibkr_keepalive() -> int:
    """Beat, every 60 s: one keep-alive per IBKR connection (an idle gateway session dies after about 5 minutes)."""
    connection_ids = list(BrokerConnection.objects.filter(kind=BrokerKind.IBKR).values_list("pk", flat=True))
    for connection_id in connection_ids:
        ibkr_keepalive_connection.apply_async(args=[connection_id], expires=55)
    if settings.IBKR_GATEWAY_URL:  # the gateway of strategies with no broker connection
        ibkr_keepalive_environment.apply_async(expires=55)
    return len(connection_ids) + bool(settings.IBKR_GATEWAY_URL)


@shared_task(name="brokers.ibkr_keepalive_environment", ignore_result=True)
def ibkr_keepalive_environment() -> bool | None:
    """Tickle the gateway of IBKR_GATEWAY_URL (no BrokerConnection row). No retry: the next beat is one."""
    try:
        with lock("ibkr-keepalive:environment", ttl=60, wait=0):
            return session_keepalive(connection=None).can_trade
    except LockTimeout:
        return None


@shared_task(name="brokers.ibkr_keepalive_connection", ignore_result=True)
def ibkr_keepalive_connection(connection_id: int) -> bool | None:
    """Tickle one gateway and store its session state on the connection. No retry: the next beat is one."""
    connection = BrokerConnection.objects.filter(pk=connection_id).first()
    if connection is None:
        return None
    try:
        with lock(f"ibkr-keepalive:{connection_id}", ttl=60, wait=0):
            return session_keepalive(connection=connection).can_trade
    except LockTimeout:
        return None
