"""Celery tasks of the books: thin, each calls one service (the beat's schedule: config/celery.py)."""

from __future__ import annotations

import logging

from celery import shared_task

from brokers.interface import BrokerError
from brokers.models import BrokerConnection
from core.coordination import LockTimeout, lock
from portfolio.services import connection_reconcile, snapshots_take
from portfolio.services import stops_watch as watch

logger = logging.getLogger(__name__)


@shared_task(name="portfolio.stops_watch", ignore_result=True)
def stops_watch() -> int:
    try:
        with lock("stops-watch", ttl=120, wait=0):
            return len(watch())
    except LockTimeout:
        return 0


@shared_task(name="portfolio.snapshots", ignore_result=True)
def portfolio_snapshots() -> int:
    """Snapshots of every portfolio, then each account's positions compared with the broker's (drift flagged)."""
    taken = snapshots_take()
    # A replay's account is compared by nobody: its broker works on the replay's clock, not this one.
    for connection in BrokerConnection.objects.all():
        try:
            connection_reconcile(broker_connection=connection)
        except BrokerError as exc:
            logger.info("reconciliation of %s skipped: %s", connection, exc)
    return len(taken)
