"""What a run is handed: the one thing that differs between a live run and a replay's step.

The executor's steps ask their environment for the clock, the bars, the broker, the open position, the charts and
the analyst's options; they never ask which kind of run they are in. `LiveEnvironment` is the scheduled run, the
manual "run now" and the `analyse` command; replays.environment.ReplayEnvironment is a replay's step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd
from django.conf import settings

from brokers.interface import Broker
from brokers.services import broker_for
from market.charts import render_chart
from market.clock import MarketClock, clock_for_strategy
from market.indicators import compute
from market.sources import BarSource, source_for_strategy
from portfolio.models import Position
from trading.analysis import open_position
from trading.models import Strategy


class RunEnvironment(Protocol):
    """Everything a run reads from outside the strategy's own rows, and how it may behave."""

    @property
    def defers_lineage(self) -> bool: ...  # lineage is written with the run's next write, not step by step

    @property
    def splits_queues(self) -> bool: ...  # a step may hand the run off to the queue it belongs on

    @property
    def notifies(self) -> bool: ...  # a failed run or a rejected order tells the owner

    @property
    def advances_playback(self) -> bool: ...  # a playback strategy's cursor moves one bar per run

    @property
    def llm_cache(self) -> str: ...  # signals_app's cache modes: use, only, off

    @property
    def analyst(self) -> str | None: ...  # None: the strategy's own

    @property
    def model(self) -> str | None: ...  # None: the strategy's own, else the default

    @property
    def kill_switch(self) -> bool | None: ...  # None: the global TRADING_KILL_SWITCH

    @property
    def charts_off(self) -> str: ...  # why the run draws no charts; "" draws them

    def strategy(self, strategy_id: int) -> Strategy: ...

    def clock(self, strategy: Strategy) -> MarketClock: ...

    def bar_source(self, strategy: Strategy) -> BarSource: ...

    def broker(self, strategy: Strategy, *, clock: MarketClock, bar_source: BarSource) -> Broker: ...

    def indicator_frames(self, strategy: Strategy, frame: pd.DataFrame) -> dict[str, pd.DataFrame]: ...

    def render_chart(self, frame: pd.DataFrame, **options: Any) -> bytes: ...

    def open_position(self, strategy: Strategy) -> Position | None: ...

    def analyst_view(self, context: dict[str, Any]) -> dict[str, Any]: ...


def indicator_frames(strategy: Strategy, frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """name -> market.indicators.compute's frame, for each of the strategy's indicators, in order."""
    return {
        link.indicator.name: compute(frame, link.indicator.indicator_type, link.indicator.parameters)
        for link in strategy.strategy_indicators.all()
    }


@dataclass
class LiveEnvironment:
    """The market's clock, the strategy's own data source and broker, the books in the database."""

    llm_cache: str = "use"
    analyst: str | None = None
    model: str | None = None
    splits_queues: bool = field(default_factory=lambda: bool(settings.PIPELINE_SPLIT_QUEUES))
    defers_lineage: bool = False
    notifies: bool = True
    advances_playback: bool = True
    kill_switch: bool | None = None
    charts_off: str = ""

    def strategy(self, strategy_id: int) -> Strategy:
        # The default manager: a live run can never load a replay's copy of a strategy.
        return (
            Strategy.objects.select_related("symbol", "broker_connection", "owner")
            .prefetch_related("strategy_indicators__indicator")
            .get(pk=strategy_id)
        )

    def clock(self, strategy: Strategy) -> MarketClock:
        return clock_for_strategy(strategy)

    def bar_source(self, strategy: Strategy) -> BarSource:
        return source_for_strategy(strategy)

    def broker(self, strategy: Strategy, *, clock: MarketClock, bar_source: BarSource) -> Broker:
        return broker_for(strategy.broker_connection, clock=clock, bar_source=bar_source, bar_size=strategy.bar_size)

    def indicator_frames(self, strategy: Strategy, frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
        return indicator_frames(strategy, frame)

    def render_chart(self, frame: pd.DataFrame, **options: Any) -> bytes:
        return render_chart(frame, **options)

    def open_position(self, strategy: Strategy) -> Position | None:
        return open_position(strategy)

    def analyst_view(self, context: dict[str, Any]) -> dict[str, Any]:
        return context
