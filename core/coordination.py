"""Locks and rate limits shared by every process: in Redis when REDIS_URL is set, else in the database.

- `lock(name)`: one holder at a time across processes and machines; a holder that dies loses it after `ttl`.
- `throttle(key, interval=...)`: at most one call per `interval` seconds per key; callers queue for their turn.
- `semaphore(name, size=...)`: at most `size` holders at once (e.g. IBKR's 5 concurrent history requests).

Call them outside database transactions: the database backend must commit its claim for others to see it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import redis
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from core.models import Lease, RateSlot

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.05


class LockTimeout(Exception):
    """The lock (or a semaphore slot) was not free within the wait."""


class ThrottleTimeout(Exception):
    """This caller's turn would come later than `max_wait` allows."""


@cache
def _redis_client(url: str):
    return redis.Redis.from_url(url)


def _redis():
    return _redis_client(settings.REDIS_URL) if settings.REDIS_URL else None


# --- lock ---------------------------------------------------------------------------------------------------------


@contextmanager
def lock(name: str, *, ttl: float = 60, wait: float = 30) -> Iterator[None]:
    token = uuid.uuid4().hex
    if not _try_acquire(name, token, ttl=ttl, wait=wait):
        raise LockTimeout(f"lock {name!r} still held after {wait:g}s")
    try:
        yield
    finally:
        _release(name, token)


def _try_acquire(name: str, token: str, *, ttl: float, wait: float) -> bool:
    deadline = time.monotonic() + wait
    while True:
        if _acquire_once(name, token, ttl=ttl):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)


def _acquire_once(name: str, token: str, *, ttl: float) -> bool:
    client = _redis()
    if client is not None:
        return bool(client.set(f"lock:{name}", token, nx=True, px=int(ttl * 1000)))
    now = timezone.now()
    try:
        with transaction.atomic():
            Lease.objects.get_or_create(name=name, defaults={"token": "", "expires_at": now})
    except IntegrityError:
        pass  # another process created the row first; the conditional update below decides
    taken = (
        Lease.objects.filter(name=name)
        .filter(Q(token="") | Q(expires_at__lte=now))
        .update(token=token, expires_at=now + dt.timedelta(seconds=ttl))
    )
    return taken == 1


# Deletes the key only if we still hold it: a holder whose ttl ran out must not release the next holder's lock.
_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _release(name: str, token: str) -> None:
    client = _redis()
    if client is not None:
        released = client.eval(_RELEASE_SCRIPT, 1, f"lock:{name}", token)
    else:
        released = Lease.objects.filter(name=name, token=token).update(token="", expires_at=timezone.now())
    if not released:
        logger.warning("lock %s expired before its holder released it", name)


# --- semaphore ------------------------------------------------------------------------------------------------------


@contextmanager
def semaphore(name: str, *, size: int, ttl: float = 120, wait: float = 60) -> Iterator[None]:
    if size < 1:
        raise ValueError("semaphore size must be at least 1")
    token = uuid.uuid4().hex
    deadline = time.monotonic() + wait
    while True:
        slot = next((f"{name}:{i}" for i in range(size) if _acquire_once(f"{name}:{i}", token, ttl=ttl)), None)
        if slot is not None:
            break
        if time.monotonic() >= deadline:
            raise LockTimeout(f"semaphore {name!r}: all {size} slots still held after {wait:g}s")
        time.sleep(POLL_SECONDS)
    try:
        yield
    finally:
        _release(slot, token)


# --- throttle -------------------------------------------------------------------------------------------------------

# Reserves the caller's turn atomically and returns how long to wait for it, in ms (-1: later than max_wait).
# Redis's own clock is used so that every process agrees on "now".
_THROTTLE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local slot = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
if slot - now > tonumber(ARGV[2]) then return -1 end
redis.call('SET', KEYS[1], slot + interval, 'PX', slot - now + interval + 1000)
return slot - now
"""


def throttle(key: str, *, interval: float, max_wait: float = 30) -> None:
    """Block until this caller may make its call: at most one per `interval` seconds per key, in arrival order."""
    if interval <= 0:
        return
    client = _redis()
    if client is not None:
        wait_ms = int(client.eval(_THROTTLE_SCRIPT, 1, f"throttle:{key}", int(interval * 1000), int(max_wait * 1000)))
        if wait_ms < 0:
            raise ThrottleTimeout(f"throttle {key!r}: the next turn is more than {max_wait:g}s away")
        wait = wait_ms / 1000
    else:
        wait = _reserve_slot_in_database(key, interval=interval, max_wait=max_wait)
    if wait > 0:
        time.sleep(wait)


def _reserve_slot_in_database(key: str, *, interval: float, max_wait: float) -> float:
    try:
        with transaction.atomic():
            RateSlot.objects.get_or_create(key=key, defaults={"next_at": timezone.now()})
    except IntegrityError:
        pass
    with transaction.atomic():
        # The row lock (PostgreSQL) or the IMMEDIATE write lock (SQLite) queues concurrent callers here.
        row = RateSlot.objects.select_for_update().get(key=key)
        now = timezone.now()
        slot = max(now, row.next_at)
        wait = (slot - now).total_seconds()
        if wait > max_wait:
            raise ThrottleTimeout(f"throttle {key!r}: the next turn is more than {max_wait:g}s away")
        row.next_at = slot + dt.timedelta(seconds=interval)
        row.save(update_fields=["next_at"])
    return wait
