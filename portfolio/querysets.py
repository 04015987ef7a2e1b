from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth.models import User
from django.db import models

from orders.protocols import StrategyLike

if TYPE_CHECKING:
    from portfolio.models import Position  # noqa: F401  (the string in the base class names it)


class PositionQuerySet(models.QuerySet["Position"]):
    def for_owner(self, user: User) -> PositionQuerySet:
        return self.filter(owner=user)

    def open(self) -> PositionQuerySet:
        return self.filter(closed_at__isnull=True, quantity__gt=0)

    def for_strategy(self, strategy: StrategyLike) -> PositionQuerySet:
        # ignore: the plugin wants trading's Strategy, a layer above, known here as a StrategyLike
        return self.filter(strategy=strategy)  # type: ignore[misc]

    def watched(self) -> PositionQuerySet:
        """Open positions of a strategy with a stop or a target: what the stop/target watch looks at."""
        return self.open().filter(strategy__isnull=False).exclude(stop_loss__isnull=True, take_profit__isnull=True)
