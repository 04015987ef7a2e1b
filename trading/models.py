import uuid
from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from brokers.models import BrokerConnection
from core.models import DecimalDigits, LiveManager, ReplayMarked
from market.models import BarSize, IndicatorConfig, MarketDataSource, Symbol
from signals_app.models import Analyst
from trading.querysets import ExecutionQuerySet, StrategyQuerySet

MONEY: DecimalDigits = {"max_digits": 18, "decimal_places": 2}
RATIO: DecimalDigits = {"max_digits": 7, "decimal_places": 4}


class Strategy(ReplayMarked):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="strategies")
    name = models.CharField(max_length=100)
    symbol = models.ForeignKey(Symbol, on_delete=models.PROTECT, related_name="strategies")
    bar_size = models.CharField(max_length=8, choices=BarSize.choices, default=BarSize.D1)
    lookback_bars = models.PositiveIntegerField(default=120, help_text="bars shown on the chart and to the analyst")
    weekly_chart = models.BooleanField(default=False, help_text="also render a weekly chart")
    indicators = models.ManyToManyField(IndicatorConfig, through="StrategyIndicator", related_name="strategies")

    prompt_template = models.ForeignKey(
        "signals_app.PromptTemplate", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    pinned_prompt_version = models.ForeignKey(
        "signals_app.PromptVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    analyst = models.CharField(max_length=16, choices=Analyst.choices, default=Analyst.RULES)
    llm_model = models.CharField(max_length=100, blank=True, help_text="blank: the default model (LLM_MODEL)")

    schedule_cron = models.CharField(max_length=100, default="*/15 9-16 * * 1-5", help_text="minute hour dom month dow")
    schedule_timezone = models.CharField(max_length=64, default="America/New_York")
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", on_delete=models.SET_NULL, null=True, blank=True, related_name="strategy"
    )
    market_data_source = models.CharField(
        max_length=16, choices=MarketDataSource.choices, default=MarketDataSource.STORED
    )
    broker_connection = models.ForeignKey(
        BrokerConnection, on_delete=models.PROTECT, null=True, blank=True, related_name="strategies"
    )
    max_bar_age_bars = models.PositiveSmallIntegerField(
        default=2,
        validators=[MinValueValidator(1)],
        help_text="a run whose last bar is older than this many bar intervals of open market time is skipped",
    )
    trading_days_only = models.BooleanField(
        default=True, help_text="skip runs on days the exchange is closed (a holiday, a weekend)"
    )

    # Risk: the gate the analyst cannot override.
    risk_per_trade = models.DecimalField(**RATIO, default=Decimal("0.0100"), help_text="fraction of equity at risk")
    max_position_value = models.DecimalField(**MONEY, default=Decimal("10000.00"))
    max_open_positions = models.PositiveIntegerField(default=1)
    daily_loss_limit = models.DecimalField(**MONEY, default=Decimal("1000.00"))
    max_orders_per_day = models.PositiveIntegerField(default=4)
    min_confidence = models.DecimalField(**RATIO, default=Decimal("0.6000"))
    reward_risk_ratio = models.DecimalField(**RATIO, default=Decimal("2.0000"))
    use_bracket_orders = models.BooleanField(default=False)
    kill_switch = models.BooleanField(default=False, help_text="blocks new entries for this strategy")
    is_active = models.BooleanField(default=True)
    archived_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="archived (what deleting does): no schedule, runs nothing, its history kept, its position watched",
    )

    last_execution_at = models.DateTimeField(null=True, blank=True)
    next_execution_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = LiveManager.from_queryset(StrategyQuerySet)()
    with_replays = StrategyQuerySet.as_manager()

    class Meta:
        ordering = ["owner", "name"]
        verbose_name_plural = "strategies"
        constraints = [
            # Beat never runs a replay's copy: it has no PeriodicTask to run it by (trading.services.schedule_sync).
            models.CheckConstraint(
                condition=Q(is_replay=False) | Q(periodic_task__isnull=True), name="strategy_replay_copy_unscheduled"
            ),
            models.UniqueConstraint(
                fields=["owner", "name"],
                condition=Q(archived_at__isnull=True),
                name="strategy_name_unique_per_owner",
                violation_error_message="You already have a strategy with this name.",
            ),
            models.CheckConstraint(condition=Q(bar_size__in=BarSize.values), name="strategy_bar_size_valid"),
            models.CheckConstraint(condition=Q(analyst__in=Analyst.values), name="strategy_analyst_valid"),
            models.CheckConstraint(
                condition=Q(market_data_source__in=MarketDataSource.values), name="strategy_data_source_valid"
            ),
            models.CheckConstraint(
                condition=Q(risk_per_trade__gt=0, risk_per_trade__lte=Decimal("0.1")),
                name="strategy_risk_per_trade_in_range",
            ),
            models.CheckConstraint(
                condition=Q(min_confidence__gte=0, min_confidence__lte=1), name="strategy_min_confidence_in_range"
            ),
            models.CheckConstraint(condition=Q(max_position_value__gt=0), name="strategy_max_position_positive"),
            models.CheckConstraint(condition=Q(daily_loss_limit__gte=0), name="strategy_daily_loss_not_negative"),
            models.CheckConstraint(condition=Q(reward_risk_ratio__gt=0), name="strategy_reward_risk_positive"),
            models.CheckConstraint(condition=Q(lookback_bars__gte=20), name="strategy_lookback_at_least_20"),
        ]

    def __str__(self) -> str:
        return self.name


class StrategyIndicator(models.Model):
    """The original `strategy_indicators` link, ordered."""

    strategy = models.ForeignKey(Strategy, on_delete=models.CASCADE, related_name="strategy_indicators")
    indicator = models.ForeignKey(IndicatorConfig, on_delete=models.PROTECT, related_name="strategy_links")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["strategy", "position"]
        constraints = [
            models.UniqueConstraint(fields=["strategy", "indicator"], name="strategy_indicator_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.strategy} #{self.position}: {self.indicator}"


class ExecutionStatus(models.TextChoices):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"


class SkipReason(models.TextChoices):
    """Why a run did not go on: one vocabulary for every cause. A SKIPPED execution always has one."""

    INACTIVE = "inactive", "Strategy paused"
    CLAIM_HELD = "claim_held", "Another run holds the strategy"
    TRIGGER_EXPIRED = "trigger_expired", "Trigger expired before it ran"
    PLAYBACK_EXHAUSTED = "playback_exhausted", "Playback data exhausted"
    SESSION_DOWN = "session_down", "Broker session down"
    STALE_DATA = "stale_data", "Market data stale"
    MARKET_CLOSED = "market_closed", "Market closed"
    LLM_BUDGET = "llm_budget", "LLM budget reached"
    DRIFT_HALT = "drift_halt", "Halted: books drift from the broker"
    PROTECTION_HALT = "protection_halt", "Halted: position unprotected"
    STRATEGY_ARCHIVED = "strategy_archived", "Strategy archived"


class StrategyExecution(ReplayMarked):
    execution_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    strategy = models.ForeignKey(Strategy, on_delete=models.CASCADE, related_name="executions")
    status = models.CharField(max_length=16, choices=ExecutionStatus.choices, default=ExecutionStatus.RUNNING)
    dry_run = models.BooleanField(default=False, help_text="analysed only: nothing is placed")
    trigger = models.CharField(max_length=16, default="schedule", help_text="schedule, manual, command, replay")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, help_text="the failure, or why the run was skipped")
    skip_reason = models.CharField(max_length=24, choices=SkipReason.choices, blank=True, default="")

    objects = LiveManager.from_queryset(ExecutionQuerySet)()
    with_replays = ExecutionQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["strategy", "-started_at"], name="execution_strategy_recent")]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=ExecutionStatus.values), name="execution_status_valid"),
            models.CheckConstraint(
                condition=(Q(status="SKIPPED") & Q(skip_reason__in=SkipReason.values))
                | (~Q(status="SKIPPED") & Q(skip_reason="")),
                name="execution_skipped_iff_reason",
            ),
            models.CheckConstraint(
                condition=Q(finished_at__isnull=True) | Q(finished_at__gte=models.F("started_at")),
                name="execution_finishes_after_start",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.strategy} {self.started_at:%Y-%m-%d %H:%M} {self.status}"


class StrategyClaim(models.Model):
    """Which execution holds a strategy, and until when: a run claims its strategy's row atomically, so a strategy
    already running is not started twice, and a claim left by a crashed worker lapses at `expires_at`."""

    strategy = models.OneToOneField(Strategy, on_delete=models.CASCADE, primary_key=True, related_name="claim")
    execution = models.OneToOneField(
        StrategyExecution, on_delete=models.SET_NULL, null=True, blank=True, related_name="claim"
    )
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.strategy_id} held by {self.execution_id or 'nobody'} until {self.expires_at:%H:%M:%S}"
