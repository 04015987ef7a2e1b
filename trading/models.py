import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from market.models import BarSize, Symbol
from trading.querysets import ExecutionQuerySet, NotificationQuerySet, StrategyQuerySet

MONEY = {"max_digits": 18, "decimal_places": 2}
RATIO = {"max_digits": 7, "decimal_places": 4}

DEFAULT_QUESTION_IDS = ["o163", "o383", "o451", "o10331"]


def default_question_ids() -> list[str]:
    return list(DEFAULT_QUESTION_IDS)


class Analyst(models.TextChoices):
    RULES = "rules", "Rules (offline)"
    ANTHROPIC = "anthropic", "Anthropic"
    OPENAI = "openai", "OpenAI-compatible"


class BrokerKind(models.TextChoices):
    SIMULATED = "simulated", "Simulated"
    IBKR = "ibkr", "Interactive Brokers"


class MarketDataSource(models.TextChoices):
    STORED = "stored", "Stored bars"
    PLAYBACK = "playback", "Playback of stored history"
    IBKR = "ibkr", "IBKR history"


class IndicatorType(models.TextChoices):
    RSI = "RSI"
    MACD = "MACD"
    ATR = "ATR"
    SMA = "SMA"
    EMA = "EMA"
    BB = "BB", "Bollinger Bands"
    SUPERTREND = "SUPERTREND", "Supertrend"


class UserProfile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    time_zone = models.CharField(max_length=64, default="America/New_York")

    def __str__(self) -> str:
        return f"{self.user} ({self.time_zone})"


class BrokerConnection(models.Model):
    """Where a strategy's orders go. Never holds a password: IBKR logins happen in the gateway's own page."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="broker_connections")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=BrokerKind.choices, default=BrokerKind.SIMULATED)
    gateway_url = models.URLField(blank=True, help_text="e.g. https://localhost:5000/v1/api")
    account_id = models.CharField(max_length=32, blank=True)
    verify_tls = models.CharField(
        max_length=500, default="true", help_text="true, false, or the path of a CA bundle for the gateway"
    )
    allowed_question_ids = models.JSONField(
        default=default_question_ids,
        blank=True,
        help_text="IBKR order questions answered 'yes' because our own guard checks the same thing",
    )
    starting_cash = models.DecimalField(
        **MONEY, default=Decimal("100000.00"), help_text="simulated broker: the cash the account starts with"
    )
    last_keepalive_at = models.DateTimeField(null=True, blank=True)
    authenticated = models.BooleanField(default=False)
    connected = models.BooleanField(default=False)
    competing = models.BooleanField(default=False)
    auth_message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["owner", "name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="broker_connection_name_unique_per_owner"),
            models.CheckConstraint(condition=Q(kind__in=BrokerKind.values), name="broker_connection_kind_valid"),
            models.CheckConstraint(
                condition=Q(kind="simulated") | ~Q(gateway_url=""), name="ibkr_connection_has_gateway_url"
            ),
            models.CheckConstraint(condition=Q(starting_cash__gte=0), name="broker_starting_cash_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def can_trade(self) -> bool:
        return self.kind == BrokerKind.SIMULATED or (self.authenticated and self.connected and not self.competing)


class IndicatorConfig(models.Model):
    """A saved indicator with its parameters, shared by strategies through StrategyIndicator."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="indicator_configs")
    name = models.CharField(max_length=100)
    indicator_type = models.CharField(max_length=16, choices=IndicatorType.choices)
    parameters = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["owner", "name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="indicator_name_unique_per_owner"),
            models.CheckConstraint(condition=Q(indicator_type__in=IndicatorType.values), name="indicator_type_valid"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        # Every form (admin, pages, API serializers through full_clean) gets the registry's field errors, and the
        # stored parameters always carry the defaults filled in.
        from market.indicators import validate_config_fields

        self.parameters = validate_config_fields(self.indicator_type, self.parameters)


class Strategy(models.Model):
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

    last_execution_at = models.DateTimeField(null=True, blank=True)
    next_execution_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = StrategyQuerySet.as_manager()

    class Meta:
        ordering = ["owner", "name"]
        verbose_name_plural = "strategies"
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="strategy_name_unique_per_owner"),
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


class StrategyExecution(models.Model):
    execution_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    strategy = models.ForeignKey(Strategy, on_delete=models.CASCADE, related_name="executions")
    status = models.CharField(max_length=16, choices=ExecutionStatus.choices, default=ExecutionStatus.RUNNING)
    dry_run = models.BooleanField(default=False, help_text="analysed only: nothing is placed")
    trigger = models.CharField(max_length=16, default="schedule", help_text="schedule, manual, command, replay")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, help_text="the failure, or why the run was skipped")

    objects = ExecutionQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["strategy", "-started_at"], name="execution_strategy_recent")]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=ExecutionStatus.values), name="execution_status_valid"),
            models.CheckConstraint(
                condition=Q(finished_at__isnull=True) | Q(finished_at__gte=models.F("started_at")),
                name="execution_finishes_after_start",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.strategy} {self.started_at:%Y-%m-%d %H:%M} {self.status}"


class Lease(models.Model):
    """A named lock held until `expires_at`, for setups without Redis (trading.coordination)."""

    name = models.CharField(max_length=200, unique=True)
    token = models.CharField(max_length=64, blank=True)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.name


class RateSlot(models.Model):
    """The next instant a throttled key may be used, for setups without Redis (trading.coordination)."""

    key = models.CharField(max_length=200, unique=True)
    next_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.key


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


class NotificationKind(models.TextChoices):
    FILL = "fill", "Fill"
    REJECTION = "rejection", "Rejection"
    RUN_FAILED = "run_failed", "Run failed"


class Delivery(models.TextChoices):
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Not attempted"


class Notification(models.Model):
    """One notification sent to an owner (trading.notifications), with what each channel did: mail to the owner's
    address, and the webhook (NOTIFY_WEBHOOK_URL). A channel not configured is `skipped`; a failure keeps its error."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=16, choices=NotificationKind.choices)
    subject = models.CharField(max_length=255)
    body = models.TextField(blank=True)
    strategy = models.ForeignKey(Strategy, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    order = models.ForeignKey(
        "orders.Order", on_delete=models.SET_NULL, null=True, blank=True, related_name="notifications"
    )
    execution = models.ForeignKey(
        StrategyExecution, on_delete=models.SET_NULL, null=True, blank=True, related_name="notifications"
    )
    email_result = models.CharField(max_length=8, choices=Delivery.choices, default=Delivery.SKIPPED)
    email_error = models.TextField(blank=True)
    webhook_result = models.CharField(max_length=8, choices=Delivery.choices, default=Delivery.SKIPPED)
    webhook_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = NotificationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="notification_owner_recent")]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=NotificationKind.values), name="notification_kind_valid"),
            models.CheckConstraint(
                condition=Q(email_result__in=Delivery.values), name="notification_email_result_valid"
            ),
            models.CheckConstraint(
                condition=Q(webhook_result__in=Delivery.values), name="notification_webhook_result_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.subject}"

    @property
    def delivered(self) -> bool:
        return Delivery.SENT in (self.email_result, self.webhook_result)
