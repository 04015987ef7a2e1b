from decimal import Decimal

from django.db import models
from django.db.models import Avg, Count, Q

FOUR_PLACES = Decimal("0.0001")


class PromptTemplateQuerySet(models.QuerySet):
    def visible_to(self, user) -> "PromptTemplateQuerySet":
        """The user's own templates and the global ones."""
        return self.filter(Q(owner=user) | Q(owner__isnull=True))


class SignalQuerySet(models.QuerySet):
    def for_owner(self, user) -> "SignalQuerySet":
        return self.filter(strategy__owner=user)

    def actionable(self) -> "SignalQuerySet":
        return self.exclude(action="HOLD")

    def closed(self) -> "SignalQuerySet":
        """Signals whose trade has closed: a win, a loss or a scratch."""
        return self.filter(outcome__in=["WIN", "LOSS", "SCRATCH"])

    def performance(self) -> list[dict]:
        """One row per (prompt version, model): signals by action, closed outcomes, average confidence, hit rate
        (wins over closed trades) and average R multiple. prompt_version None is the rules baseline."""
        rows = (
            self.order_by()
            .values("prompt_version", "model")
            .annotate(
                signals=Count("id"),
                buys=Count("id", filter=Q(action="BUY")),
                sells=Count("id", filter=Q(action="SELL")),
                holds=Count("id", filter=Q(action="HOLD")),
                wins=Count("id", filter=Q(outcome="WIN")),
                losses=Count("id", filter=Q(outcome="LOSS")),
                scratches=Count("id", filter=Q(outcome="SCRATCH")),
                average_confidence=Avg("confidence", filter=Q(action__in=["BUY", "SELL"])),
                average_r_multiple=Avg("r_multiple", filter=Q(outcome__in=["WIN", "LOSS", "SCRATCH"])),
            )
            .order_by("prompt_version", "model")
        )
        result = []
        for row in rows:
            closed = row["wins"] + row["losses"] + row["scratches"]
            row["hit_rate"] = (Decimal(row["wins"]) / closed).quantize(FOUR_PLACES) if closed else None
            for key in ("average_confidence", "average_r_multiple"):
                row[key] = None if row[key] is None else Decimal(row[key]).quantize(FOUR_PLACES)
            result.append(row)
        return result

    def calibration(self, buckets: int = 5) -> list[dict]:
        """Average confidence against hit rate, in equal-width confidence buckets over closed trades: a calibrated
        prompt's 0.8 signals win about 80% of the time."""
        rows = list(self.closed().values_list("confidence", "outcome"))
        result = []
        for index in range(buckets):
            low, high = Decimal(index) / buckets, Decimal(index + 1) / buckets
            members = [(c, o) for c, o in rows if low <= c < high or (index == buckets - 1 and c == high)]
            if not members:
                continue
            wins = sum(1 for _, outcome in members if outcome == "WIN")
            result.append(
                {
                    "low": low,
                    "high": high,
                    "trades": len(members),
                    "average_confidence": (sum(c for c, _ in members) / len(members)).quantize(FOUR_PLACES),
                    "hit_rate": (Decimal(wins) / len(members)).quantize(FOUR_PLACES),
                }
            )
        return result


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
