"""Tasks the test worker loads besides the project's own (`--include tests.worker_tasks`), to observe the worker."""

from __future__ import annotations

import time

import redis
from celery import shared_task
from django.conf import settings
from django.contrib.auth import get_user_model


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)


@shared_task(name="harness.record_attempt")
def record_attempt(key: str, hold_first_attempt: float = 0.0) -> int:
    """Count each delivery in Redis under `harness:<key>:attempts`; the first one holds so a test can kill it."""
    client = _redis()
    attempt = client.incr(f"harness:{key}:attempts")
    if attempt == 1 and hold_first_attempt:
        time.sleep(hold_first_attempt)
    client.set(f"harness:{key}:finished", attempt)
    return attempt


@shared_task(name="harness.user_exists")
def user_exists(username: str) -> bool:
    """Whether the worker's database has this user: proves it reads the test database and committed rows."""
    return get_user_model().objects.filter(username=username).exists()
