"""Forms for the trading pages. They validate what the user typed; the services do the writing."""

from __future__ import annotations

import zoneinfo
from functools import cache

from django import forms
from django.core.exceptions import ValidationError
from django.forms.models import ModelChoiceIterator
from django.utils.datastructures import MultiValueDict

from brokers.models import BrokerConnection, BrokerKind
from core.forms import model_choice_field
from market.indicators import validate_config
from market.models import IndicatorConfig, MarketDataSource, Symbol
from signals_app.models import PromptTemplate, PromptType, PromptVersion
from trading.models import Strategy
from trading.services import cron_fields


@cache
def time_zone_choices() -> list[tuple[str, str]]:
    names = sorted(name for name in zoneinfo.available_timezones() if "/" in name or name == "UTC")
    return [(name, name.replace("_", " ")) for name in names]


def apply_service_error(form: forms.BaseForm, error: ValidationError) -> None:
    """Put a service's ValidationError where the user typed the value: on the field it names, else on the form."""
    if hasattr(error, "error_dict"):
        for field, messages in error.error_dict.items():
            form.add_error(field if field in form.fields else None, messages)
    else:
        form.add_error(None, error)


class TimeZoneForm(forms.Form):
    time_zone = forms.ChoiceField(choices=time_zone_choices, help_text="Every time on these pages is shown in it.")


class AllowedQuestionsForm(forms.ModelForm):
    """The IBKR order questions answered "yes" automatically, as comma-separated ids (e.g. o163, o383)."""

    allowed_question_ids = forms.CharField(
        required=False,
        label="Allowed order questions",
        help_text="Comma-separated IBKR message ids answered 'yes' because our own guard checks the same thing.",
    )

    class Meta:
        model = BrokerConnection
        fields = ["allowed_question_ids"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound:
            self.initial["allowed_question_ids"] = ", ".join(self.instance.allowed_question_ids or [])

    def clean_allowed_question_ids(self) -> list[str]:
        ids = [part.strip() for part in self.cleaned_data["allowed_question_ids"].split(",") if part.strip()]
        bad = [part for part in ids if not (part[:1].isalpha() and part[1:].isdigit())]
        if bad:
            raise ValidationError(f"Not an IBKR message id: {', '.join(bad)} (expected something like o163).")
        return list(dict.fromkeys(ids))


class IndicatorConfigForm(forms.ModelForm):
    """An indicator and its parameters, typed as `period=14, std=2`; the market registry validates them."""

    parameters = forms.CharField(
        required=False,
        help_text="Comma-separated name=value pairs; leave empty for the defaults.",
        widget=forms.TextInput(attrs={"placeholder": "period=14"}),
    )

    class Meta:
        model = IndicatorConfig
        fields = ["name", "indicator_type", "parameters"]

    def __init__(self, *args, owner, **kwargs):
        self.owner = owner
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound:
            self.initial["parameters"] = format_parameters(self.instance.parameters)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        taken = IndicatorConfig.objects.filter(owner=self.owner, name__iexact=name).exclude(pk=self.instance.pk)
        if taken.exists():
            raise ValidationError("You already have an indicator with this name.")
        return name

    def clean_parameters(self) -> dict:
        return parse_parameters(self.cleaned_data["parameters"])

    def clean(self):
        cleaned = super().clean()
        assert cleaned is not None  # ModelForm.clean returns cleaned_data
        indicator_type = cleaned.get("indicator_type")
        parameters = cleaned.get("parameters")
        if indicator_type and parameters is not None:
            try:
                cleaned["parameters"] = validate_config(indicator_type, parameters)
            except ValidationError as error:
                self.add_error("parameters", error)
        return cleaned


def parse_parameters(text: str) -> dict:
    parameters: dict = {}
    for part in (text or "").replace(";", ",").split(","):
        if not part.strip():
            continue
        name, sep, raw = part.partition("=")
        name, raw = name.strip(), raw.strip()
        if not sep or not name or not raw:
            raise ValidationError(f"“{part.strip()}” is not name=value.")
        try:
            value: int | float = int(raw)
        except ValueError:
            try:
                value = float(raw)
            except ValueError:
                raise ValidationError(f"{name}: “{raw}” is not a number.") from None
        parameters[name] = value
    return parameters


def format_parameters(parameters: dict | None) -> str:
    return ", ".join(f"{key}={value}" for key, value in (parameters or {}).items())


# --- Strategies: the create flow is five small forms (symbol → indicators → prompt → schedule → risk); the edit
# page shows them all at once. Each is a ModelForm only for its field validation: nothing here saves.

SYMBOL_FIELDS = ["name", "symbol", "bar_size", "lookback_bars", "weekly_chart"]
PROMPT_FIELDS = ["analyst", "llm_model", "prompt_template", "pinned_prompt_version"]
SCHEDULE_FIELDS = [
    "schedule_cron",
    "schedule_timezone",
    "market_data_source",
    "broker_connection",
    "max_bar_age_bars",
    "trading_days_only",
]
RISK_FIELDS = [
    "risk_per_trade",
    "max_position_value",
    "max_open_positions",
    "daily_loss_limit",
    "max_orders_per_day",
    "min_confidence",
    "reward_risk_ratio",
    "use_bracket_orders",
]


class OwnedStrategyForm(forms.ModelForm):
    """Limits every choice to what the owner may use: their indicators, prompts and broker connections."""

    def __init__(self, *args, owner, **kwargs):
        self.owner = owner
        super().__init__(*args, **kwargs)
        if "symbol" in self.fields:
            model_choice_field(self, "symbol").queryset = Symbol.objects.all()
        if "indicators" in self.fields:
            indicators = model_choice_field(self, "indicators")
            indicators.queryset = IndicatorConfig.objects.filter(owner=owner).order_by("name")
        if "prompt_template" in self.fields:
            template = model_choice_field(self, "prompt_template")
            template.queryset = (
                PromptTemplate.objects.visible_to(owner)
                .filter(prompt_type=PromptType.ANALYSIS)
                .filter(strategy__isnull=True)
                .order_by("name")
            )
            template.empty_label = "Default (resolved at run time)"
        if "pinned_prompt_version" in self.fields:
            version = model_choice_field(self, "pinned_prompt_version")
            version.queryset = PromptVersion.objects.filter(
                template__in=PromptTemplate.objects.visible_to(owner)
            ).select_related("template")
            version.empty_label = "Latest version"
        if "broker_connection" in self.fields:
            connections = BrokerConnection.objects.filter(owner=owner).order_by("kind", "name")
            field = model_choice_field(self, "broker_connection")
            field.queryset = connections
            # No connection means the IBKR gateway named by IBKR_GATEWAY_URL; with accounts of their own, the user
            # picks one (a simulated one first), so nothing goes to a real gateway by accident.
            first = next(iter(connections), None)
            if first is not None:
                field.required, field.empty_label = True, None
                if not self.instance.broker_connection_id:
                    self.initial.setdefault("broker_connection", first.pk)
            else:
                field.empty_label = "IBKR gateway from the environment (IBKR_GATEWAY_URL)"
            if "market_data_source" in self.fields and not self.instance.pk:
                # data that moves with the account: the simulated broker's playback, an IBKR account's own history
                simulated = first is not None and first.kind == BrokerKind.SIMULATED
                self.initial.setdefault(
                    "market_data_source", MarketDataSource.PLAYBACK if simulated else MarketDataSource.IBKR
                )
        if "market_data_source" in self.fields:
            self.fields["market_data_source"].help_text = (
                "Stored bars are history: a run trades only while its last bar is fresh (max bar age), so a strategy "
                "on old stored bars is skipped as stale. Playback steps through stored history one bar per run."
            )
        if "schedule_timezone" in self.fields:
            self.fields["schedule_timezone"] = forms.ChoiceField(
                choices=time_zone_choices, initial="America/New_York", label="Schedule time zone"
            )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        taken = Strategy.objects.filter(owner=self.owner, name__iexact=name).current().exclude(pk=self.instance.pk)
        if taken.exists():
            raise ValidationError("You already have a strategy with this name.")
        return name

    def clean_indicators(self) -> list[IndicatorConfig]:
        """In the order the user gave them (the order the analyst and the charts use)."""
        chosen = list(self.cleaned_data["indicators"])
        assert isinstance(self.data, MultiValueDict)  # bound to request.POST or a step's saved QueryDict
        given = [str(value) for value in self.data.getlist(self.add_prefix("indicators"))]
        return sorted(chosen, key=lambda i: given.index(str(i.pk)) if str(i.pk) in given else len(given))

    def clean_schedule_cron(self) -> str:
        expression = " ".join(self.cleaned_data["schedule_cron"].split())
        cron_fields(expression)  # raises ValidationError naming what is wrong
        return expression

    def clean(self):
        cleaned = super().clean()
        assert cleaned is not None  # ModelForm.clean returns cleaned_data
        template, version = cleaned.get("prompt_template"), cleaned.get("pinned_prompt_version")
        if version is not None and template is not None and version.template_id != template.pk:
            self.add_error("pinned_prompt_version", "This version belongs to another template.")
        return cleaned


class SymbolStepForm(OwnedStrategyForm):
    class Meta:
        model = Strategy
        fields = SYMBOL_FIELDS
        widgets = {"symbol": forms.HiddenInput}


class IndicatorsStepForm(OwnedStrategyForm):
    indicators = forms.ModelMultipleChoiceField(
        queryset=IndicatorConfig.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="The rules analyst votes with these; the charts draw them.",
    )

    class Meta:
        model = Strategy
        fields: list[str] = []


class PromptStepForm(OwnedStrategyForm):
    class Meta:
        model = Strategy
        fields = PROMPT_FIELDS


class ScheduleStepForm(OwnedStrategyForm):
    class Meta:
        model = Strategy
        fields = SCHEDULE_FIELDS
        help_texts = {"schedule_cron": "minute hour day-of-month month day-of-week, e.g. */15 9-16 * * 1-5"}


class RiskStepForm(OwnedStrategyForm):
    class Meta:
        model = Strategy
        fields = RISK_FIELDS


class StrategyEditForm(OwnedStrategyForm):
    indicators = forms.ModelMultipleChoiceField(
        queryset=IndicatorConfig.objects.none(), required=False, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = Strategy
        fields = [*SYMBOL_FIELDS, *PROMPT_FIELDS, *SCHEDULE_FIELDS, *RISK_FIELDS, "kill_switch"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound:
            self.initial["indicators"] = [link.indicator_id for link in self.instance.strategy_indicators.all()]
        choices = model_choice_field(self, "symbol").choices
        assert isinstance(choices, ModelChoiceIterator)  # lazy: the queryset is read when the widget renders
        self.fields["symbol"].widget = forms.Select(choices=choices)


CREATE_STEPS: list[tuple[str, str, type[OwnedStrategyForm]]] = [
    ("symbol", "Symbol", SymbolStepForm),
    ("indicators", "Indicators", IndicatorsStepForm),
    ("prompt", "Prompt", PromptStepForm),
    ("schedule", "Schedule", ScheduleStepForm),
    ("risk", "Risk", RiskStepForm),
]
