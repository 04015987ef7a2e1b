"""Celery tasks of the books: thin, each calls one service (the beat's schedule: config/celery.py)."""

from __future__ import annotations

import logging

from celery import shared_task

from core.coordination import LockTimeout, lock
from portfolio.services import snapshots_take
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
    """Snapshots of every portfolio (each account is compared with its broker by `trading.reconcile`)."""
    return len(snapshots_take())
