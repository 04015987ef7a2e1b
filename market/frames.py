"""Bars as pandas frames: the shape every source returns, and the weekly resample of daily bars."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import numpy as np
import pandas as pd

BAR_COLUMNS = ["open", "high", "low", "close", "volume"]


def empty_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {column: pd.Series(dtype=float) for column in BAR_COLUMNS},
        index=pd.DatetimeIndex([], tz="UTC", name="timestamp"),
    )


def frame_from_rows(rows: Iterable[tuple]) -> pd.DataFrame:
    """(timestamp, open, high, low, close, volume) tuples, ascending -> a frame of floats indexed by UTC time."""
    rows = list(rows)
    if not rows:
        return empty_frame()
    stamps = [row[0] for row in rows]
    values = np.array([row[1:6] for row in rows], dtype=float)
    index = pd.DatetimeIndex(stamps, name="timestamp")
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    return pd.DataFrame(values, index=index, columns=BAR_COLUMNS)


def resample_weekly(daily: pd.DataFrame, *, as_of: dt.date | None = None) -> pd.DataFrame:
    """Weekly bars from daily ones, weeks ending Friday: open first, high max, low min, close last, volume sum.

    Each week is keyed at its first session, so a weekly bar is never stamped after the daily bars it holds (a
    playback cursor on a Wednesday sees that week so far, not a bar dated Friday). Column `partial` is True for a
    last week that has not reached its Friday by `as_of` (default: the date of the last daily bar)."""
    if daily.empty:
        frame = empty_frame()
        frame["partial"] = pd.Series(dtype=bool)
        return frame
    # W-FRI bins are (previous Friday, Friday]; a weekend bar (crypto) belongs to the week ending the next Friday.
    grouped = daily.resample("W-FRI", label="right", closed="right")
    weekly = grouped.agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    first_session = pd.Series(daily.index, index=daily.index).resample("W-FRI", label="right", closed="right").first()
    keep = grouped["close"].count() > 0
    weekly, first_session = weekly[keep], first_session[keep]
    week_ends = weekly.index.date
    as_of = as_of or daily.index[-1].date()
    partial = np.zeros(len(weekly), dtype=bool)
    partial[-1] = as_of < week_ends[-1]
    weekly.index = pd.DatetimeIndex(first_session, name="timestamp")
    weekly["partial"] = partial
    return weekly[[*BAR_COLUMNS, "partial"]]
