import hashlib

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.models import LiveManager, ReplayMarked
from market.models import PRICE, Symbol
from signals_app.querysets import LLMCallQuerySet, PromptTemplateQuerySet, SignalQuerySet


class Analyst(models.TextChoices):
    RULES = "rules", "Rules (offline)"
    ANTHROPIC = "anthropic", "Anthropic"
    OPENAI = "openai", "OpenAI-compatible"


class PromptType(models.TextChoices):
    ANALYSIS = "analysis", "Chart analysis"
    SYSTEM = "system", "System instructions"


class SignalAction(models.TextChoices):
    BUY = "BUY"
    SELL = "SELL"
    HOLD = "HOLD"


class SignalOutcome(models.TextChoices):
    OPEN = "OPEN"
    WIN = "WIN"
    LOSS = "LOSS"
    SCRATCH = "SCRATCH"
    NONE = "NONE"


class PromptTemplate(models.Model):
    """A named prompt. Owner none = global (staff only); strategy set = that strategy's own."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="prompt_templates"
    )
    strategy = models.ForeignKey(
        "trading.Strategy", on_delete=models.CASCADE, null=True, blank=True, related_name="own_prompt_templates"
    )
    prompt_type = models.CharField(max_length=16, choices=PromptType.choices, default=PromptType.ANALYSIS)
    language = models.CharField(max_length=8, default="en")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PromptTemplateQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(prompt_type__in=PromptType.values), name="prompt_type_valid"),
            models.CheckConstraint(
                condition=Q(strategy__isnull=True) | Q(owner__isnull=False), name="strategy_prompt_has_owner"
            ),
            models.UniqueConstraint(
                fields=["owner", "name"], name="prompt_name_unique_per_owner", condition=Q(owner__isnull=False)
            ),
            models.UniqueConstraint(fields=["name"], name="global_prompt_name_unique", condition=Q(owner__isnull=True)),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_global(self) -> bool:
        return self.owner_id is None


class PromptVersion(models.Model):
    """One immutable body of a template. Editing a template makes a new version; signals point at the one used."""

    template = models.ForeignKey(PromptTemplate, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    body = models.TextField()
    sha256 = models.CharField(max_length=64, editable=False)
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["template", "-number"]
        get_latest_by = "number"
        constraints = [
            models.UniqueConstraint(fields=["template", "number"], name="prompt_version_number_unique"),
            models.CheckConstraint(condition=Q(number__gte=1), name="prompt_version_number_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.template} v{self.number}"

    def save(self, *args, **kwargs) -> None:
        # Immutability is an invariant of the row, not business logic: a stored version never changes.
        if self.pk is not None:
            raise ValidationError("A prompt version is immutable; create a new version instead.")
        self.sha256 = self.digest(self.body)
        super().save(*args, **kwargs)

    @staticmethod
    def digest(body: str) -> str:
        return hashlib.sha256(body.encode("utf-8")).hexdigest()


class TradingSignal(ReplayMarked):
    strategy = models.ForeignKey("trading.Strategy", on_delete=models.CASCADE, related_name="signals")
    execution = models.ForeignKey(
        "trading.StrategyExecution", on_delete=models.SET_NULL, null=True, blank=True, related_name="signals"
    )
    symbol = models.ForeignKey(Symbol, on_delete=models.PROTECT, related_name="signals")
    action = models.CharField(max_length=4, choices=SignalAction.choices)
    entry_price = models.DecimalField(**PRICE, null=True, blank=True)
    stop_loss = models.DecimalField(**PRICE, null=True, blank=True)
    take_profit = models.DecimalField(**PRICE, null=True, blank=True)
    confidence = models.DecimalField(max_digits=5, decimal_places=4, default=0)
    reasoning = models.TextField(blank=True)
    refusal_reason = models.TextField(blank=True, help_text="why the analysis was turned into HOLD, if it was")
    prompt_version = models.ForeignKey(
        PromptVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="signals"
    )
    analyst = models.CharField(max_length=16, choices=Analyst.choices)
    model = models.CharField(max_length=100, blank=True)
    generated_at = models.DateTimeField()
    outcome = models.CharField(max_length=8, choices=SignalOutcome.choices, default=SignalOutcome.NONE)
    r_multiple = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)

    objects = LiveManager.from_queryset(SignalQuerySet)()
    with_replays = SignalQuerySet.as_manager()

    class Meta:
        ordering = ["-generated_at"]
        indexes = [models.Index(fields=["strategy", "-generated_at"], name="signal_strategy_recent")]
        constraints = [
            models.CheckConstraint(condition=Q(action__in=SignalAction.values), name="signal_action_valid"),
            models.CheckConstraint(condition=Q(outcome__in=SignalOutcome.values), name="signal_outcome_valid"),
            models.CheckConstraint(condition=Q(analyst__in=Analyst.values), name="signal_analyst_valid"),
            models.CheckConstraint(
                condition=Q(confidence__gte=0, confidence__lte=1), name="signal_confidence_in_range"
            ),
            models.CheckConstraint(
                condition=(Q(entry_price__isnull=True) | Q(entry_price__gt=0))
                & (Q(stop_loss__isnull=True) | Q(stop_loss__gt=0))
                & (Q(take_profit__isnull=True) | Q(take_profit__gt=0)),
                name="signal_prices_positive",
            ),
            models.CheckConstraint(
                condition=~Q(action="BUY")
                | Q(
                    # SQL passes a CHECK that is NULL, so "stop < entry" alone would let a BUY without a stop in.
                    entry_price__isnull=False,
                    stop_loss__isnull=False,
                    take_profit__isnull=False,
                    stop_loss__lt=models.F("entry_price"),
                    take_profit__gt=models.F("entry_price"),
                ),
                name="signal_buy_stop_below_entry_below_target",
            ),
            models.CheckConstraint(
                condition=~Q(action="SELL") | Q(entry_price__isnull=False), name="signal_sell_has_exit_price"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.symbol.symbol} @ {self.generated_at:%Y-%m-%d %H:%M}"


class PromptPerformance(models.Model):
    """How one prompt version did with one model: signals by action, outcomes once trades close."""

    prompt_version = models.ForeignKey(PromptVersion, on_delete=models.CASCADE, related_name="performance")
    model = models.CharField(max_length=100, blank=True)
    signals = models.PositiveIntegerField(default=0)
    buys = models.PositiveIntegerField(default=0)
    sells = models.PositiveIntegerField(default=0)
    holds = models.PositiveIntegerField(default=0)
    wins = models.PositiveIntegerField(default=0)
    losses = models.PositiveIntegerField(default=0)
    scratches = models.PositiveIntegerField(default=0)
    average_confidence = models.DecimalField(max_digits=5, decimal_places=4, null=True, blank=True)
    hit_rate = models.DecimalField(max_digits=5, decimal_places=4, null=True, blank=True)
    average_r_multiple = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["prompt_version", "model"]
        verbose_name_plural = "prompt performance"
        constraints = [
            models.UniqueConstraint(fields=["prompt_version", "model"], name="prompt_performance_unique"),
            models.CheckConstraint(
                condition=Q(hit_rate__isnull=True) | Q(hit_rate__gte=0, hit_rate__lte=1),
                name="prompt_performance_hit_rate_in_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.prompt_version} / {self.model or 'default'}"


class LLMCallStatus(models.TextChoices):
    OK = "ok", "Answered"
    ERROR = "error", "Failed"


class LLMCall(models.Model):
    """One request to an LLM (or one answer taken from the LLM cache), kept append-only for audit.

    `request` is the body exactly as sent, minus credentials, with each image replaced by its storage key and
    sha256; `response` is the full JSON the server returned. `cache_key` identifies an identical request (model,
    prompt version, system and rendered text, image hashes, schema), so a repeat can be answered from here.
    """

    strategy = models.ForeignKey(
        "trading.Strategy", on_delete=models.SET_NULL, null=True, blank=True, related_name="llm_calls"
    )
    execution = models.ForeignKey(
        "trading.StrategyExecution", on_delete=models.SET_NULL, null=True, blank=True, related_name="llm_calls"
    )
    prompt_version = models.ForeignKey(
        PromptVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="llm_calls"
    )
    system_prompt_version = models.ForeignKey(
        PromptVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    analyst = models.CharField(max_length=16, choices=Analyst.choices)
    requested_model = models.CharField(max_length=100)
    resolved_model = models.CharField(max_length=100, blank=True, help_text="the dated model id the server used")
    cache_key = models.CharField(max_length=64, db_index=True)
    from_cache = models.BooleanField(default=False, help_text="answered from a stored response: nothing was sent")
    cached_from = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="cache_hits")
    request = models.JSONField(default=dict, blank=True)
    request_headers = models.JSONField(default=dict, blank=True, help_text="without credentials")
    response = models.JSONField(default=dict, blank=True)
    answer_text = models.TextField(blank=True, help_text="the answer as extracted: text blocks only, no thinking")
    answer_fields = models.JSONField(null=True, blank=True, help_text="the answer when it came as a tool's input")
    status = models.CharField(max_length=8, choices=LLMCallStatus.choices, default=LLMCallStatus.OK)
    error = models.TextField(blank=True)
    stop_reason = models.CharField(max_length=40, blank=True)
    request_id = models.CharField(max_length=100, blank=True)
    retries = models.PositiveSmallIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cache_creation_input_tokens = models.PositiveIntegerField(default=0)
    cache_read_input_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(
        max_digits=12, decimal_places=6, null=True, blank=True, help_text="blank: no price known for the model"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = LLMCallQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "LLM call"
        indexes = [
            models.Index(fields=["cache_key", "-created_at"], name="llm_call_cache_lookup"),
            models.Index(fields=["strategy", "-created_at"], name="llm_call_strategy_recent"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(analyst__in=Analyst.values), name="llm_call_analyst_valid"),
            models.CheckConstraint(condition=Q(status__in=LLMCallStatus.values), name="llm_call_status_valid"),
            models.CheckConstraint(condition=Q(status="ok") | ~Q(error=""), name="llm_call_error_has_message"),
            models.CheckConstraint(
                condition=Q(cost_usd__isnull=True) | Q(cost_usd__gte=0), name="llm_call_cost_not_negative"
            ),
            models.CheckConstraint(condition=Q(from_cache=False) | Q(cost_usd=0), name="llm_call_cache_answer_is_free"),
        ]

    def __str__(self) -> str:
        source = "cache" if self.from_cache else self.resolved_model or self.requested_model
        return f"{self.analyst} {source} {self.created_at:%Y-%m-%d %H:%M} {self.status}"

    @property
    def total_input_tokens(self) -> int:
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens
