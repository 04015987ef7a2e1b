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
