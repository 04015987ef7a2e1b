"""A replay: one strategy judged on stored history through the live executor, with a clock that never runs ahead.

A replay runs a copy of the strategy on a simulated account of its own. Both, and every execution, lineage record,
signal, order, trade and position a replay writes, are marked `is_replay` (core.models.ReplayMarked): their models'
default managers leave them out, so no live read can show them, and deleting a replay removes them whole.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from core.models import DecimalDigits
from market.models import PRICE, BarSize, Symbol
from replays.querysets import ReplayQuerySet
from signals_app.models import Analyst

MONEY: DecimalDigits = {"max_digits": 18, "decimal_places": 2}
USD: DecimalDigits = {"max_digits": 12, "decimal_places": 6}


class ReplayStatus(models.TextChoices):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    BUDGET_STOPPED = "BUDGET_STOPPED", "Stopped by the budget"
    FAILED = "FAILED"


FINISHED_STATUSES = frozenset({ReplayStatus.COMPLETED, ReplayStatus.BUDGET_STOPPED, ReplayStatus.FAILED})
STALE_AFTER = dt.timedelta(minutes=10)  # a RUNNING replay with no step for this long lost its runner


class LLMCacheMode(models.TextChoices):
    USE = "use", "use: answer identical requests from the cache"
    ONLY = "only", "only: a cache miss is an error"
    OFF = "off", "off: always ask the analyst"


class Replay(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="replays")
    strategy = models.ForeignKey(
        "trading.Strategy",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="replays",
        help_text="the strategy judged (a replay outlives it: its report stays)",
    )
    # The replay runs a copy of the strategy with its own simulated account, so every row the live executor writes
    # for it (executions, signals, orders, positions, lineage) hangs off these two and never mixes with live rows.
    # PROTECT: they are removed only with the replay (replays.services.replay_delete), never orphaned.
    shadow_strategy = models.OneToOneField(
        "trading.Strategy", on_delete=models.PROTECT, null=True, blank=True, related_name="replay_of"
    )
    broker_connection = models.OneToOneField(
        "brokers.BrokerConnection", on_delete=models.PROTECT, null=True, blank=True, related_name="replay_of"
    )
    baseline_of = models.ForeignKey(
        "self",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="baselines",
        help_text="set on the rules-analyst replay run beside another replay for comparison",
    )
    symbol = models.ForeignKey(Symbol, on_delete=models.PROTECT, related_name="+")
    bar_size = models.CharField(max_length=8, choices=BarSize.choices)
    start = models.DateField()
    end = models.DateField()
    analyst = models.CharField(max_length=16, choices=Analyst.choices)
    llm_model = models.CharField(max_length=100, blank=True)
    prompt_version = models.ForeignKey(
        "signals_app.PromptVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    llm_cache = models.CharField(max_length=4, choices=LLMCacheMode.choices, default=LLMCacheMode.USE)
    budget_usd = models.DecimalField(**USD, null=True, blank=True, help_text="blank: no budget")
    anonymise = models.BooleanField(default=False, help_text="the analyst sees no ticker and relative dates")
    render_charts = models.BooleanField(default=True)
    starting_cash = models.DecimalField(**MONEY, default=Decimal("100000.00"))
    settings_snapshot = models.JSONField(default=dict, blank=True, help_text="the strategy as judged")
    lineage_pruned_at = models.DateTimeField(null=True, blank=True)

    status = models.CharField(max_length=16, choices=ReplayStatus.choices, default=ReplayStatus.PENDING)
    error = models.TextField(blank=True)
    steps_total = models.PositiveIntegerField(default=0)
    steps_done = models.PositiveIntegerField(default=0)
    analyst_calls = models.PositiveIntegerField(default=0, help_text="requests that reached the analyst")
    cache_hits = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    llm_cost_usd = models.DecimalField(**USD, default=Decimal(0))
    report = models.JSONField(default=dict, blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="the last step's time: a runner's pulse")
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = ReplayQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="replay_owner_recent")]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=ReplayStatus.values), name="replay_status_valid"),
            models.CheckConstraint(condition=Q(analyst__in=Analyst.values), name="replay_analyst_valid"),
            models.CheckConstraint(condition=Q(llm_cache__in=LLMCacheMode.values), name="replay_llm_cache_valid"),
            models.CheckConstraint(condition=Q(end__gte=F("start")), name="replay_end_not_before_start"),
            models.CheckConstraint(condition=Q(steps_done__lte=F("steps_total")), name="replay_steps_within_total"),
            models.CheckConstraint(
                condition=Q(budget_usd__isnull=True) | Q(budget_usd__gte=0), name="replay_budget_not_negative"
            ),
            models.CheckConstraint(condition=Q(llm_cost_usd__gte=0), name="replay_cost_not_negative"),
            models.CheckConstraint(condition=Q(starting_cash__gt=0), name="replay_starting_cash_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.strategy} {self.start}..{self.end} ({self.analyst}) {self.status}"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def is_stale(self) -> bool:
        """RUNNING with no step for a while: its runner died and it can be resumed."""
        return (
            self.status == ReplayStatus.RUNNING
            and self.heartbeat_at is not None
            and self.heartbeat_at < timezone.now() - STALE_AFTER
        )

    @property
    def progress_percent(self) -> int:
        return int(100 * self.steps_done / self.steps_total) if self.steps_total else 0


class ReplayStep(models.Model):
    """One bar of a replay: the decision taken at that bar and the account right after it."""

    replay = models.ForeignKey(Replay, on_delete=models.CASCADE, related_name="steps")
    index = models.PositiveIntegerField()
    at = models.DateTimeField(help_text="the replay clock at this step")
    bar_timestamp = models.DateTimeField()
    close = models.DecimalField(**PRICE)
    execution = models.ForeignKey(
        "trading.StrategyExecution", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    execution_status = models.CharField(max_length=16, blank=True)
    action = models.CharField(max_length=4, blank=True, help_text="BUY, SELL, HOLD; blank when no signal")
    confidence = models.DecimalField(max_digits=5, decimal_places=4, null=True, blank=True)
    entry_price = models.DecimalField(**PRICE, null=True, blank=True)
    stop_loss = models.DecimalField(**PRICE, null=True, blank=True)
    take_profit = models.DecimalField(**PRICE, null=True, blank=True)
    cash = models.DecimalField(**MONEY)
    position_quantity = models.DecimalField(max_digits=18, decimal_places=6, default=0)
    equity = models.DecimalField(**MONEY)
    llm_cost_usd = models.DecimalField(**USD, default=Decimal(0))
    analyst_calls = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["replay", "index"]
        constraints = [
            models.UniqueConstraint(fields=["replay", "index"], name="replay_step_unique_index"),
            models.CheckConstraint(condition=Q(position_quantity__gte=0), name="replay_step_quantity_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.replay_id} #{self.index} {self.action or '-'} {self.equity}"
