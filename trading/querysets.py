from django.db import models


class StrategyQuerySet(models.QuerySet):
    def for_owner(self, user) -> "StrategyQuerySet":
        return self.filter(owner=user)

    def active(self) -> "StrategyQuerySet":
        return self.filter(is_active=True)


class ExecutionQuerySet(models.QuerySet):
    def for_owner(self, user) -> "ExecutionQuerySet":
        return self.filter(strategy__owner=user)

    def running(self) -> "ExecutionQuerySet":
        return self.filter(status="RUNNING")

    def recent(self) -> "ExecutionQuerySet":
        return self.order_by("-started_at")

    def of_replays(self) -> "ExecutionQuerySet":
        return self.filter(is_replay=True)
