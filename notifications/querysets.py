from __future__ import annotations

from django.db import models


class ChannelQuerySet(models.QuerySet):
    def for_owner(self, user) -> ChannelQuerySet:
        return self.filter(owner=user)


class NotificationQuerySet(models.QuerySet):
    def for_owner(self, user) -> NotificationQuerySet:
        return self.filter(owner=user)

    def recent(self) -> NotificationQuerySet:
        return self.order_by("-created_at", "-pk")


class DeliveryQuerySet(models.QuerySet):
    def pending(self) -> DeliveryQuerySet:
        return self.filter(state="pending")
