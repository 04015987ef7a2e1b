"""The trading calendar: which days an exchange trades, when it opens and closes (early closes included), and the
name of the holiday that shuts it. Every part asks here: the market-open check, DAY expiry, data freshness,
orders-per-day and daily-loss windows, and `Strategy.trading_days_only`.

The sessions come from `exchange_calendars` (pinned in requirements.txt): its calendars are kept up to date with
each exchange's announced holidays and half days, which a hand-kept list would not be. A symbol's exchange is found
by its exchange code, else by its time zone; outside the library's range (before 1990, or years ahead) the rule
falls back to weekdays at the exchange's regular hours.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from zoneinfo import ZoneInfo

import exchange_calendars
import pandas as pd

logger = logging.getLogger(__name__)

DEFAULT_EXCHANGE_TZ = "America/New_York"
FIRST_YEAR = 1990
YEARS_AHEAD = 2

# Exchange codes as IBKR and the importers write them, and time zones, to the calendar's market identifier (MIC).
# Every US stock venue trades New York's hours and holidays.
EXCHANGE_CALENDARS = {
    **dict.fromkeys(
        ["SMART", "NYSE", "NASDAQ", "ARCA", "NYSEARCA", "AMEX", "BATS", "IEX", "ISLAND", "PINK", "NMS"], "XNYS"
    ),
    "TSE": "XTSE",
    "LSE": "XLON",
    "IBIS": "XETR",
    "XETRA": "XETR",
    "SBF": "XPAR",
    "AEB": "XAMS",
    "SEHK": "XHKG",
    "TSEJ": "XTKS",
    "ASX": "XASX",
}
ZONE_CALENDARS = {
    "America/New_York": "XNYS",
    "America/Toronto": "XTSE",
    "Europe/London": "XLON",
    "Europe/Berlin": "XETR",
    "Europe/Paris": "XPAR",
    "Europe/Amsterdam": "XAMS",
    "Asia/Hong_Kong": "XHKG",
    "Asia/Tokyo": "XTKS",
    "Australia/Sydney": "XASX",
}
CALENDAR_ZONES = {code: zone for zone, code in ZONE_CALENDARS.items()}
REGULAR_OPEN, REGULAR_CLOSE = dt.time(9, 30), dt.time(16, 0)


@functools.cache
def _calendar(code: str) -> exchange_calendars.ExchangeCalendar:
    end = dt.datetime.now(dt.UTC).year + YEARS_AHEAD
    return exchange_calendars.get_calendar(code, start=f"{FIRST_YEAR}-01-01", end=f"{end}-12-31")


@functools.cache
def _sessions(code: str) -> frozenset[dt.date]:
    return frozenset(stamp.date() for stamp in _calendar(code).sessions)


def calendar_code(tz: str = DEFAULT_EXCHANGE_TZ, exchange: str = "") -> str | None:
    """The calendar of a symbol's exchange: by its code, else by its time zone; None when neither is known (then
    the exchange is taken to trade weekdays, 09:30 to 16:00 in its zone)."""
    code = EXCHANGE_CALENDARS.get(exchange.upper()) if exchange else None
    if code is not None and CALENDAR_ZONES[code] != tz:
        code = None  # the symbol says its exchange keeps another zone's hours: the zone is believed
    code = code or ZONE_CALENDARS.get(tz)
    if code is None:
        _unknown(exchange, tz)
    return code


@functools.cache
def _unknown(exchange: str, tz: str) -> None:
    logger.warning("no trading calendar for exchange %r in %s: weekdays at 09:30-16:00 there are used", exchange, tz)


def _in_range(code: str | None, day: dt.date) -> bool:
    if code is None:
        return False
    calendar = _calendar(code)
    return calendar.first_session.date() <= day <= calendar.last_session.date()


def is_session(day: dt.date, tz: str = DEFAULT_EXCHANGE_TZ, exchange: str = "") -> bool:
    """Whether the exchange trades on `day` (its local date)."""
    code = calendar_code(tz, exchange)
    if code is None or not _in_range(code, day):
        return day.weekday() < 5
    return day in _sessions(code)


def holiday_name(day: dt.date, tz: str = DEFAULT_EXCHANGE_TZ, exchange: str = "") -> str:
    """Why the exchange is shut on `day`, in words: the holiday's name, "Saturday"/"Sunday", or "" on a session."""
    if is_session(day, tz, exchange):
        return ""
    if day.weekday() >= 5:
        return day.strftime("%A")
    code = calendar_code(tz, exchange)
    if code is None:
        return "a market holiday"
    stamp = pd.Timestamp(day)
    calendar = _calendar(code)
    regular = calendar.regular_holidays
    if regular is not None:
        named = regular.holidays(stamp, stamp, return_name=True)
        if len(named):
            return str(named.iloc[0])
    return "a market holiday"


def session_open(day: dt.date, tz: str = DEFAULT_EXCHANGE_TZ, exchange: str = "") -> dt.datetime:
    """The instant (UTC) the session of `day` opens; for a day that is no session, when it would have."""
    code = calendar_code(tz, exchange)
    if code is not None and _in_range(code, day) and is_session(day, tz, exchange):
        return _calendar(code).session_open(pd.Timestamp(day)).to_pydatetime()
    return dt.datetime.combine(day, REGULAR_OPEN, tzinfo=ZoneInfo(tz)).astimezone(dt.UTC)


def session_close(day: dt.date, tz: str = DEFAULT_EXCHANGE_TZ, exchange: str = "") -> dt.datetime:
    """The instant (UTC) the session of `day` closes: 13:00 New York on a half day."""
    code = calendar_code(tz, exchange)
    if code is not None and _in_range(code, day) and is_session(day, tz, exchange):
        return _calendar(code).session_close(pd.Timestamp(day)).to_pydatetime()
    return dt.datetime.combine(day, REGULAR_CLOSE, tzinfo=ZoneInfo(tz)).astimezone(dt.UTC)


def is_market_open(instant: dt.datetime, tz: str = DEFAULT_EXCHANGE_TZ, exchange: str = "") -> bool:
    day = instant.astimezone(ZoneInfo(tz)).date()
    if not is_session(day, tz, exchange):
        return False
    return session_open(day, tz, exchange) <= instant < session_close(day, tz, exchange)


def next_session(day: dt.date, tz: str = DEFAULT_EXCHANGE_TZ, exchange: str = "") -> dt.date:
    """The first session after `day`."""
    day += dt.timedelta(days=1)
    while not is_session(day, tz, exchange):
        day += dt.timedelta(days=1)
    return day


def day_order_session(instant: dt.datetime, tz: str = DEFAULT_EXCHANGE_TZ, exchange: str = "") -> dt.date:
    """The session a DAY order placed at `instant` works in: today's if it has not closed, else the next one."""
    day = instant.astimezone(ZoneInfo(tz)).date()
    if is_session(day, tz, exchange) and instant < session_close(day, tz, exchange):
        return day
    return next_session(day, tz, exchange)


def open_time_between(
    start: dt.datetime, end: dt.datetime, tz: str = DEFAULT_EXCHANGE_TZ, exchange: str = ""
) -> dt.timedelta:
    """How long the market was open between two instants: what a bar's age is measured in (a weekend or a holiday
    does not make data stale)."""
    if end <= start:
        return dt.timedelta(0)
    total = dt.timedelta(0)
    day = start.astimezone(ZoneInfo(tz)).date()
    last = end.astimezone(ZoneInfo(tz)).date()
    while day <= last:
        if is_session(day, tz, exchange):
            opens, closes = session_open(day, tz, exchange), session_close(day, tz, exchange)
            overlap = min(closes, end) - max(opens, start)
            if overlap > dt.timedelta(0):
                total += overlap
        day += dt.timedelta(days=1)
    return total


def sessions_between(start: dt.date, end: dt.date, tz: str = DEFAULT_EXCHANGE_TZ, exchange: str = "") -> int:
    """Sessions after `start` up to and including `end`."""
    count, day = 0, start
    while day < end:
        day += dt.timedelta(days=1)
        count += is_session(day, tz, exchange)
    return count
