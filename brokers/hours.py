"""Regular trading hours of a US stock exchange, asked of the market clock's instant (no holiday calendar: a
holiday looks like a session without bars)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from market.clock import DEFAULT_EXCHANGE_TZ

OPEN = dt.time(9, 30)
CLOSE = dt.time(16, 0)


def is_session_day(day: dt.date) -> bool:
    return day.weekday() < 5


def is_market_open(instant: dt.datetime, tz: str = DEFAULT_EXCHANGE_TZ) -> bool:
    local = instant.astimezone(ZoneInfo(tz))
    return is_session_day(local.date()) and OPEN <= local.time() < CLOSE


def session_open(day: dt.date, tz: str = DEFAULT_EXCHANGE_TZ) -> dt.datetime:
    return dt.datetime.combine(day, OPEN, tzinfo=ZoneInfo(tz)).astimezone(dt.UTC)


def session_close(day: dt.date, tz: str = DEFAULT_EXCHANGE_TZ) -> dt.datetime:
    return dt.datetime.combine(day, CLOSE, tzinfo=ZoneInfo(tz)).astimezone(dt.UTC)


def day_order_session(instant: dt.datetime, tz: str = DEFAULT_EXCHANGE_TZ) -> dt.date:
    """The session a DAY order placed at `instant` works in: today's if it has not closed, else the next one."""
    local = instant.astimezone(ZoneInfo(tz))
    day = local.date()
    if not is_session_day(day) or local.time() >= CLOSE:
        day += dt.timedelta(days=1)
        while not is_session_day(day):
            day += dt.timedelta(days=1)
    return day
