from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.models import LiveManager, ReplayMarked
from lineage.querysets import LineageQuerySet


class LineageStatus(models.TextChoices):
    SUCCESS = "success"
    ERROR = "error"
    SKIPPED = "skipped"


class LineageRecord(ReplayMarked):
    """One step of one execution: what went in, what came out, how long it took, and whether it worked."""

    # No index of its own: lineage_execution_step (execution, step_number) serves every lookup by execution.
    execution = models.ForeignKey(
        "trading.StrategyExecution", on_delete=models.CASCADE, related_name="lineage", db_index=False
    )
    step_name = models.CharField(max_length=64)
    step_number = models.PositiveSmallIntegerField()
    input_data = models.JSONField(default=dict, blank=True)
    output_data = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    status = models.CharField(max_length=8, choices=LineageStatus.choices, default=LineageStatus.SUCCESS)
    duration_ms = models.PositiveIntegerField(default=0)
    recorded_at = models.DateTimeField(default=timezone.now)

    objects = LiveManager.from_queryset(LineageQuerySet)()
    with_replays = LineageQuerySet.as_manager()

    class Meta:
        ordering = ["execution", "step_number"]
        indexes = [
            models.Index(fields=["execution", "step_number"], name="lineage_execution_step"),
            models.Index(fields=["step_name", "-recorded_at"], name="lineage_step_recent"),
            models.Index(fields=["status", "-recorded_at"], name="lineage_status_recent"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["execution", "step_name"], name="lineage_step_unique_per_execution"),
            models.CheckConstraint(condition=Q(status__in=LineageStatus.values), name="lineage_status_valid"),
            models.CheckConstraint(
                condition=Q(status="success") | ~Q(error="") | Q(status="skipped"), name="lineage_error_has_message"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.execution_id} #{self.step_number} {self.step_name} {self.status}"
