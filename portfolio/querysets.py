from django.db import models
from django.db.models import Q


class PositionQuerySet(models.QuerySet):
    def for_owner(self, user) -> "PositionQuerySet":
        return self.filter(owner=user)

    def open(self) -> "PositionQuerySet":
        return self.filter(closed_at__isnull=True, quantity__gt=0)

    def live(self) -> "PositionQuerySet":
        """Without positions held by replays (their strategy is a replay's copy)."""
        return self.filter(Q(strategy__isnull=True) | Q(strategy__replay_of__isnull=True))

    def for_strategy(self, strategy) -> "PositionQuerySet":
        return self.filter(strategy=strategy)

    def watched(self) -> "PositionQuerySet":
        """Open positions of a strategy with a stop or a target: what the stop/target watch looks at."""
        return self.open().filter(strategy__isnull=False).exclude(stop_loss__isnull=True, take_profit__isnull=True)
