"""A replay's step as the executor sees it: the replay's clock standing at the step's bar, bars that never run past
it, the replay's own simulated account, and the replay's options (LLM cache, charts, anonymised series). The
workflow is the live one (trading.executor); only what it is handed differs (trading.environment)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from brokers.interface import Broker
from market.charts import render_chart
from market.clock import MarketClock
from market.sources import BarSource
from portfolio.models import Position
from signals_app.anonymise import anonymise_context
from trading.models import Strategy


@dataclass
class ReplayEnvironment:
    strategy_copy: Strategy  # the replay's copy, loaded once for the whole replay (its indicators prefetched)
    replay_clock: MarketClock
    source: BarSource
    account: Broker
    indicators: Callable[[pd.DataFrame], dict[str, pd.DataFrame]]  # bars window -> {name: frame on its index}
    position: Callable[[], Position | None]  # the open position as the replay's books hold it
    llm_cache: str = "use"
    render_charts: bool = True
    anonymise: bool = False
    chart_renderer: Callable[..., bytes] | None = None  # drawn ahead by replays.charts.ChartPrefetcher

    # A replay's run never hands off (its clock and bars live in the replaying process), tells nobody, leaves
    # playback cursors alone, defers its lineage to its next write, and ignores the kill switch (a live control).
    defers_lineage: bool = True
    splits_queues: bool = False
    notifies: bool = False
    advances_playback: bool = False
    kill_switch: bool | None = False
    analyst: str | None = None  # the copy already carries the analyst and model being judged
    model: str | None = None

    @property
    def charts_off(self) -> str:
        # Charts cost time and the rules analyst reads none; an anonymised replay sends none (their axes carry dates).
        if self.anonymise:
            return "anonymised: no charts"
        return "" if self.render_charts else "charts off for this replay"

    def strategy(self, strategy_id: int) -> Strategy:
        assert strategy_id == self.strategy_copy.pk, "a replay's environment runs its own copy only"
        return self.strategy_copy

    def clock(self, strategy: Strategy) -> MarketClock:
        return self.replay_clock

    def bar_source(self, strategy: Strategy) -> BarSource:
        return self.source

    def broker(self, strategy: Strategy, *, clock: MarketClock, bar_source: BarSource) -> Broker:
        return self.account  # built once on the replay's own clock and bars

    def indicator_frames(self, strategy: Strategy, frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
        return self.indicators(frame)

    def render_chart(self, frame: pd.DataFrame, **options: Any) -> bytes:
        return (self.chart_renderer or render_chart)(frame, **options)

    def open_position(self, strategy: Strategy) -> Position | None:
        return self.position()

    def analyst_view(self, context: dict[str, Any]) -> dict[str, Any]:
        return anonymise_context(context) if self.anonymise else context
