from django.db import models


class StrategyQuerySet(models.QuerySet):
    def for_owner(self, user) -> "StrategyQuerySet":
        return self.filter(owner=user)

    def active(self) -> "StrategyQuerySet":
        return self.filter(is_active=True)

    def live(self) -> "StrategyQuerySet":
        """Without the copies replays run (replays.Replay.shadow_strategy): those never trade for real."""
        return self.filter(replay_of__isnull=True)


class ExecutionQuerySet(models.QuerySet):
    def for_owner(self, user) -> "ExecutionQuerySet":
        return self.filter(strategy__owner=user)

    def running(self) -> "ExecutionQuerySet":
        return self.filter(status="RUNNING")

    def recent(self) -> "ExecutionQuerySet":
        return self.order_by("-started_at")

    def live(self) -> "ExecutionQuerySet":
        """Without replay executions (their strategy is a replay's copy)."""
        return self.filter(strategy__replay_of__isnull=True)

    def of_replays(self) -> "ExecutionQuerySet":
        return self.filter(strategy__replay_of__isnull=False)


class NotificationQuerySet(models.QuerySet):
    def for_owner(self, user) -> "NotificationQuerySet":
        return self.filter(owner=user)

    def live(self) -> "NotificationQuerySet":
        """Without those about a replay's runs (their strategy is a replay's copy); one about no strategy stays."""
        return self.filter(strategy__replay_of__isnull=True)

    def recent(self) -> "NotificationQuerySet":
        return self.order_by("-created_at", "-pk")
