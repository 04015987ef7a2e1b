"""Where bars come from. Every source answers the same two questions; the strategy picks one."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd

BAR_COLUMNS = ["open", "high", "low", "close", "volume"]


class BarSourceError(Exception):
    """The source cannot answer (no data, not connected, exhausted)."""


class PlaybackExhausted(BarSourceError):
    """The playback feed has no bar after its cursor: the run is a recorded skip."""


class BarSource:
    """bars(): a DataFrame indexed by aware UTC timestamps (ascending), float columns BAR_COLUMNS, only bars with
    timestamp <= `end` (and >= `start` when given), at most `limit` of the latest ones."""

    def bars(
        self,
        symbol,
        bar_size: str,
        *,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        raise NotImplementedError

    def latest_price(self, symbol, *, at: dt.datetime | None = None) -> Decimal:
        raise NotImplementedError
