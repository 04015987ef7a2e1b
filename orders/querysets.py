from django.db import models


class OrderQuerySet(models.QuerySet):
    def for_owner(self, user) -> "OrderQuerySet":
        return self.filter(owner=user)

    def open(self) -> "OrderQuerySet":
        from orders.models import OPEN_STATUSES

        return self.filter(status__in=OPEN_STATUSES)

    def entries(self) -> "OrderQuerySet":
        return self.filter(leg="entry")
