from django.db import models
from django.db.models import Q


class PromptTemplateQuerySet(models.QuerySet):
    def visible_to(self, user) -> "PromptTemplateQuerySet":
        """The user's own templates and the global ones."""
        return self.filter(Q(owner=user) | Q(owner__isnull=True))


class SignalQuerySet(models.QuerySet):
    def for_owner(self, user) -> "SignalQuerySet":
        return self.filter(strategy__owner=user)

    def actionable(self) -> "SignalQuerySet":
        return self.exclude(action="HOLD")
