from django.db import models


class ReplayQuerySet(models.QuerySet):
    def for_owner(self, user) -> "ReplayQuerySet":
        return self.filter(owner=user)

    def primary(self) -> "ReplayQuerySet":
        """Replays a person started, without the rules baselines run beside them."""
        return self.filter(baseline_of__isnull=True)

    def finished_before(self, instant) -> "ReplayQuerySet":
        return self.filter(finished_at__lt=instant)
