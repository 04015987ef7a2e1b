"""The market clock: the one answer to "what time is it" for a strategy.

Live sources use real UTC time. The playback feed and replays use their cursor, so fills, expiry, order tracking,
the stop/target watch, valuation, "per day" limits, charts and prompts all see the same instant. Ask
`clock_for_strategy(strategy).now()`; never call timezone.now() for market decisions.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.utils import timezone

from market import calendar
from market.models import MarketDataSource
from market.playback import playback_cursor

DEFAULT_EXCHANGE_TZ = "America/New_York"


class MarketClock:
    def now(self) -> dt.datetime:
        raise NotImplementedError

    def trading_day(self, tz: str = DEFAULT_EXCHANGE_TZ) -> dt.date:
        """The trading day of `now()` in the exchange's time zone."""
        return trading_day(self.now(), tz)


class WallClock(MarketClock):
    """Real time, for live market data."""

    def now(self) -> dt.datetime:
        return timezone.now()


@dataclass(frozen=True)
class FixedClock(MarketClock):
    """A clock stopped at one instant: a playback cursor or a replay step."""

    at: dt.datetime

    def __post_init__(self) -> None:
        if timezone.is_naive(self.at):
            raise ValueError("FixedClock needs an aware datetime")

    def now(self) -> dt.datetime:
        return self.at


def trading_day(instant: dt.datetime, tz: str = DEFAULT_EXCHANGE_TZ) -> dt.date:
    return instant.astimezone(ZoneInfo(tz)).date()


INTRADAY_DURATIONS = {
    "1min": dt.timedelta(minutes=1),
    "5min": dt.timedelta(minutes=5),
    "15min": dt.timedelta(minutes=15),
    "30min": dt.timedelta(minutes=30),
    "1h": dt.timedelta(hours=1),
    "4h": dt.timedelta(hours=4),
}
SESSION_CLOSE = dt.time(16, 0)
SESSIONS_PER_WEEK = 5


def bar_close(timestamp: dt.datetime, bar_size: str, tz: str = DEFAULT_EXCHANGE_TZ) -> dt.datetime:
    """The instant a bar is complete (aware UTC).

    Intraday bars are keyed at their start, so they close one duration later. Daily bars are keyed at 00:00 UTC of
    their session date and close at 16:00 in the exchange's time zone that day, so the trading day of the close is
    the session date. Weekly bars (keyed at their first session) close on the Friday of that week.
    """
    if bar_size in INTRADAY_DURATIONS:
        return timestamp + INTRADAY_DURATIONS[bar_size]
    session = timestamp.astimezone(dt.UTC).date()
    if bar_size == "1w":
        session += dt.timedelta(days=(4 - session.weekday()) % 7)
    elif bar_size != "1d":
        raise ValueError(f"unknown bar size {bar_size!r}")
    return dt.datetime.combine(session, SESSION_CLOSE, tzinfo=ZoneInfo(tz)).astimezone(dt.UTC)


def clock_for_strategy(strategy) -> MarketClock:
    """The strategy's clock: real time for live and stored data, the close of the cursor bar for playback."""
    if strategy.market_data_source != MarketDataSource.PLAYBACK:
        return WallClock()
    cursor = playback_cursor(strategy)
    return FixedClock(bar_close(cursor, strategy.bar_size, strategy.symbol.time_zone))


def bar_age(
    timestamp: dt.datetime, bar_size: str, now: dt.datetime, tz: str = DEFAULT_EXCHANGE_TZ, exchange: str = ""
) -> float:
    """How many bar intervals of open market time have passed since the bar keyed at `timestamp` completed, by the
    exchange's calendar: a daily bar counts the sessions that have closed since, a weekly one those over five, an
    intraday one the open time over its duration. A weekend or a holiday adds nothing."""
    completed = bar_close(timestamp, bar_size, tz)
    if now <= completed:
        return 0.0
    if bar_size in INTRADAY_DURATIONS:
        return calendar.open_time_between(completed, now, tz, exchange) / INTRADAY_DURATIONS[bar_size]
    last_session = completed.astimezone(ZoneInfo(tz)).date()
    today = now.astimezone(ZoneInfo(tz)).date()
    closed = calendar.sessions_between(last_session, today, tz, exchange)
    if today > last_session and calendar.is_session(today, tz, exchange):
        closed -= now < calendar.session_close(today, tz, exchange)  # today's session has not closed yet
    return closed / (SESSIONS_PER_WEEK if bar_size == "1w" else 1)


def session_date(timestamp: dt.datetime) -> dt.date:
    """The session a daily or weekly bar belongs to: the date of its 00:00 UTC key, whatever the viewer's zone."""
    return timestamp.astimezone(dt.UTC).date()


def session_label(timestamp: dt.datetime, bar_size: str, tz: str = DEFAULT_EXCHANGE_TZ) -> str:
    """A bar in words: a daily or weekly one by its session date, an intraday one by its exchange-local start."""
    if bar_size in INTRADAY_DURATIONS:
        return f"{timestamp.astimezone(ZoneInfo(tz)):%Y-%m-%d %H:%M %Z}"
    return session_date(timestamp).isoformat()
