"""The playback feed's cursor: where a strategy replaying stored history stands, one bar forward per run."""

from __future__ import annotations

import datetime as dt

from django.db import transaction

from market.errors import BarSourceError, PlaybackExhausted
from market.indicators import REGISTRY, warmup_bars
from market.models import Bar, PlaybackCursor


def playback_window(strategy) -> int:
    """Bars a playback feed must have behind its first cursor: the longest indicator warm-up plus the chart's bars.
    A strategy without indicators is charted with all seven at their defaults."""
    links = strategy.strategy_indicators.select_related("indicator")
    configs = [(link.indicator.indicator_type, link.indicator.parameters) for link in links]
    if not configs:
        configs = [(name, {}) for name in REGISTRY]
    return max(warmup_bars(kind, params) for kind, params in configs) + strategy.lookback_bars


def playback_start(strategy) -> dt.datetime:
    """The first cursor: the bar at which `playback_window` bars are stored."""
    window = playback_window(strategy)
    bars = Bar.objects.for_symbol(strategy.symbol_id).of_size(strategy.bar_size)
    start = bars.chronological().values_list("timestamp", flat=True)[window - 1 : window].first()
    if start is None:
        raise BarSourceError(
            f"playback of {strategy.symbol.symbol} {strategy.bar_size} needs at least {window} stored bars "
            f"(indicator warm-up plus {strategy.lookback_bars} chart bars); {bars.count()} are stored"
        )
    return start


def playback_cursor(strategy) -> dt.datetime:
    """Where the strategy's playback stands: its saved cursor, or the start if it has not run yet."""
    saved = PlaybackCursor.objects.filter(strategy=strategy, bar_size=strategy.bar_size).first()
    return saved.cursor if saved else playback_start(strategy)


def playback_advance(*, strategy) -> dt.datetime:
    """Move the strategy's cursor one bar forward and return it. The first call (or the first after the strategy
    changed bar size) places it at the start. PlaybackExhausted when no bar follows the cursor."""
    with transaction.atomic():
        # The row lock makes two overlapping runs take two different bars rather than both the same one.
        saved = PlaybackCursor.objects.select_for_update().filter(strategy=strategy).first()
        if saved is None or saved.bar_size != strategy.bar_size:
            start = playback_start(strategy)
            PlaybackCursor.objects.update_or_create(
                strategy=strategy, defaults={"bar_size": strategy.bar_size, "cursor": start}
            )
            return start
        following = (
            Bar.objects.for_symbol(strategy.symbol_id)
            .of_size(strategy.bar_size)
            .after(saved.cursor)
            .chronological()
            .values_list("timestamp", flat=True)
            .first()
        )
        if following is None:
            raise PlaybackExhausted("playback data exhausted")
        saved.cursor = following
        saved.save(update_fields=["cursor", "updated_at"])
        return following


def playback_reset(*, strategy) -> None:
    """Forget the cursor: the next run starts the playback over."""
    PlaybackCursor.objects.filter(strategy=strategy).delete()
