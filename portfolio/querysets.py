from django.db import models


class PositionQuerySet(models.QuerySet):
    def for_owner(self, user) -> "PositionQuerySet":
        return self.filter(owner=user)

    def open(self) -> "PositionQuerySet":
        return self.filter(closed_at__isnull=True, quantity__gt=0)
