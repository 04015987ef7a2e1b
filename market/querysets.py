from datetime import datetime
from typing import Any

from django.db import models


class SymbolQuerySet(models.QuerySet):
    def by_ticker(self, ticker: str) -> "SymbolQuerySet":
        return self.filter(symbol__iexact=ticker.strip())


class BarQuerySet(models.QuerySet):
    def for_symbol(self, symbol) -> "BarQuerySet":
        return self.filter(symbol=symbol)

    def of_size(self, bar_size: str) -> "BarQuerySet":
        return self.filter(bar_size=bar_size)

    def between(self, start: datetime | None, end: datetime | None) -> "BarQuerySet":
        """Bars with start <= timestamp <= end; either bound may be None."""
        qs = self
        if start is not None:
            qs = qs.filter(timestamp__gte=start)
        if end is not None:
            qs = qs.filter(timestamp__lte=end)
        return qs

    def up_to(self, instant: datetime) -> "BarQuerySet":
        return self.filter(timestamp__lte=instant)

    def after(self, instant: datetime) -> "BarQuerySet":
        return self.filter(timestamp__gt=instant)

    def chronological(self) -> "BarQuerySet":
        return self.order_by("timestamp")

    def newest_first(self) -> "BarQuerySet":
        return self.order_by("-timestamp")

    def ohlcv(self) -> "models.QuerySet[Any, tuple[Any, ...]]":
        """(timestamp, open, high, low, close, volume) tuples, for building frames without model instances."""
        return self.values_list("timestamp", "open", "high", "low", "close", "volume")
