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
