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


class LLMCallQuerySet(models.QuerySet):
    def for_owner(self, user) -> "LLMCallQuerySet":
        return self.filter(strategy__owner=user)

    def answered(self) -> "LLMCallQuerySet":
        """Calls that got a complete answer (HTTP success and stop reason end_turn)."""
        return self.filter(status="ok", stop_reason="end_turn")

    def reusable_for(self, cache_key: str) -> "LLMCallQuerySet":
        """Answers that an identical request may reuse, the newest first. Cache hits point at their origin, so
        only original calls are candidates."""
        return self.answered().filter(cache_key=cache_key, from_cache=False).order_by("-created_at")
