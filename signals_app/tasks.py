"""Celery tasks of the signals app: thin, each calls one service."""

from __future__ import annotations

from celery import shared_task

from core.coordination import LockTimeout, lock
from signals_app.services import prompt_performance_refresh


@shared_task(name="signals_app.prompt_performance_refresh", ignore_result=True)
def prompt_performance_refresh_task() -> int:
    """Beat, every 10 minutes: recompute prompt performance from live signals. One refresh at a time; a second one
    started meanwhile has nothing to add and returns."""
    try:
        with lock("prompt-performance-refresh", ttl=600, wait=0):
            return len(prompt_performance_refresh())
    except LockTimeout:
        return 0
