from django.db import models


class StrategyQuerySet(models.QuerySet):
    def for_owner(self, user) -> "StrategyQuerySet":
        return self.filter(owner=user)

    def active(self) -> "StrategyQuerySet":
        return self.filter(is_active=True, archived_at__isnull=True)

    def current(self) -> "StrategyQuerySet":
        """Not archived: what lists, the dashboard and the API show by default."""
        return self.filter(archived_at__isnull=True)

    def archived(self) -> "StrategyQuerySet":
        return self.filter(archived_at__isnull=False)


class ExecutionQuerySet(models.QuerySet):
    def for_owner(self, user) -> "ExecutionQuerySet":
        return self.filter(strategy__owner=user)

    def running(self) -> "ExecutionQuerySet":
        return self.filter(status="RUNNING")

    def recent(self) -> "ExecutionQuerySet":
        return self.order_by("-started_at")

    def of_replays(self) -> "ExecutionQuerySet":
        return self.filter(is_replay=True)
