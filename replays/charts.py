"""A replay's charts, drawn ahead on a small process pool.

A step's chart depends only on the bars up to that step (and the indicators on them), all of which the replay has
loaded before it starts, so while the executor runs step t the pool is already drawing the charts of the next steps.
The executor asks for a chart through its ReplayEnvironment (`render_chart`) with the same arguments it would give
`market.charts.render_chart`; a chart drawn ahead for exactly that window is handed back, anything else is drawn
there and then. Drawing is the same function either way, so the PNG is the same.
"""

from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pandas as pd

import market.charts  # noqa: F401
from market.charts import render_chart

logger = logging.getLogger(__name__)

WORKERS = 2
MIN_STEPS = 30  # fewer steps than this: starting the processes would cost more than it saves


def _warm() -> None:
    """Load matplotlib's fonts and mplfinance in each worker before its first real chart."""


class ChartPrefetcher:
    def __init__(
        self,
        *,
        source,
        indicators,
        cursors: list,
        symbol: str,
        bar_size: str,
        window: int,
        drawn: int,
        workers: int = WORKERS,
    ) -> None:
        self.source = source  # the replay's bar source: its preloaded history is what each step is cut from
        self.indicators = indicators  # replays.playback.ReplayIndicators
        self.cursors = cursors
        # plain strings: the workers do not set Django up, so nothing that needs its models may reach them
        self.symbol, self.bar_size, self.window, self.drawn = str(symbol), str(bar_size), window, drawn
        self.ahead = 2 * workers + 1
        self.futures: dict[tuple, Future] = {}
        self.submitted = -1
        try:
            # spawn, not fork: a fork would copy the open database connection and any thread's held locks.
            context = multiprocessing.get_context("spawn")
            self.pool: ProcessPoolExecutor | None = ProcessPoolExecutor(workers, context, initializer=_warm)
        except (OSError, ValueError, AssertionError) as exc:  # no processes here (e.g. a daemonic worker)
            logger.warning("charts are drawn in process: no chart pool (%s)", exc)
            self.pool = None

    def _frame(self, index: int) -> pd.DataFrame:
        """The bars the executor draws at step `index`, as ReplayBarSource.bars cuts them."""
        history = self.source.history
        stop = int(history.index.searchsorted(pd.Timestamp(self.cursors[index]), side="right"))
        return history.iloc[max(stop - self.window, 0) : stop].copy()

    def prefetch(self, index: int) -> None:
        """Make sure the charts of steps index .. index + ahead are being drawn."""
        if self.pool is None:
            return
        last = min(index + self.ahead, len(self.cursors) - 1)
        for ahead in range(max(index, self.submitted + 1), last + 1):
            frame = self._frame(ahead)
            if frame.empty:
                continue
            key = (self.bar_size, frame.index[-1], len(frame))
            try:
                self.futures[key] = self.pool.submit(
                    render_chart,
                    frame,
                    symbol=self.symbol,
                    bar_size=self.bar_size,
                    indicators=self.indicators.window(frame),
                    bars=self.drawn,
                )
            # a broken pool, or none to be had (processes start on the first submit; a daemonic process may have
            # no children): the executor draws the charts itself
            except (RuntimeError, OSError, AssertionError) as exc:
                logger.warning("charts are drawn in process from here on: the chart pool failed (%s)", exc)
                self.close()
                return
        self.submitted = max(self.submitted, last)

    def render(self, df: pd.DataFrame, *, symbol: str = "", bar_size: str, bars: int | None = None, **options) -> bytes:
        """`market.charts.render_chart`, answered from the pool when that chart was drawn ahead."""
        future = None
        if not df.empty and symbol == self.symbol and bars == self.drawn and set(options) <= {"indicators"}:
            future = self.futures.pop((str(bar_size), df.index[-1], len(df)), None)
        # A chart no worker has started yet is drawn here rather than waited for.
        if future is not None and not future.cancel():
            try:
                return future.result()
            except BrokenProcessPool as exc:  # a worker died: this chart, and the ones after it, are drawn here
                logger.warning("charts are drawn in process from here on: the chart pool failed (%s)", exc)
                self.close()
        return render_chart(df, symbol=symbol, bar_size=bar_size, bars=bars, **options)

    def close(self) -> None:
        if self.pool is not None:
            # what is left is at most a chart or two already being drawn: waiting for them lets the workers exit
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
        self.futures.clear()
