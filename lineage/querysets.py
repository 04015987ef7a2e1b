from django.db import models


class LineageQuerySet(models.QuerySet):
    def for_owner(self, user) -> "LineageQuerySet":
        return self.filter(execution__strategy__owner=user)

    def for_execution(self, execution_id) -> "LineageQuerySet":
        return self.filter(execution_id=execution_id).order_by("step_number")

    def errors(self) -> "LineageQuerySet":
        return self.filter(status="error")

    def of_replays(self) -> "LineageQuerySet":
        return self.filter(is_replay=True)
