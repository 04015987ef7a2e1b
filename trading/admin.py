import difflib

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from brokers.models import BrokerConnection
from core.models import UserProfile
from market.models import IndicatorConfig
from signals_app.models import LLMCall, PromptPerformance, PromptTemplate, PromptVersion, TradingSignal
from signals_app.prompts import (
    CONTEXT_VARIABLES,
    PromptRenderError,
    check_template_body,
    prompt_version_create,
    render_prompt,
)
from trading import analysis as steps
from trading.models import Strategy, StrategyExecution, StrategyIndicator
from trading.services import (
    cron_fields,
    strategy_archive,
    strategy_pause,
    strategy_resume,
    strategy_save,
    timezone_validate,
)


@admin.register(UserProfile)
class UserProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "time_zone"]
    search_fields = ["user__username"]
    list_select_related = ["user"]


@admin.register(BrokerConnection)
class BrokerConnectionAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "kind", "account_id", "authenticated", "competing", "last_keepalive_at"]
    list_filter = ["kind", "authenticated", "competing"]
    search_fields = ["name", "account_id", "owner__username"]
    list_select_related = ["owner"]
    readonly_fields = ["last_keepalive_at", "authenticated", "connected", "competing", "auth_message"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}  # a gateway typed without a scheme is https


@admin.register(IndicatorConfig)
class IndicatorConfigAdmin(admin.ModelAdmin):
    list_display = ["name", "indicator_type", "parameters", "owner"]
    list_filter = ["indicator_type"]
    search_fields = ["name", "owner__username"]
    list_select_related = ["owner"]


class StrategyIndicatorInline(admin.TabularInline):
    model = StrategyIndicator
    extra = 0
    raw_id_fields = ["indicator"]


class StrategyAdminForm(forms.ModelForm):
    """The schedule is checked where it is typed: a bad cron expression or time zone is a field error."""

    def clean_schedule_cron(self) -> str:
        return " ".join(cron_fields(self.cleaned_data["schedule_cron"]).values())

    def clean_schedule_timezone(self) -> str:
        return timezone_validate(self.cleaned_data["schedule_timezone"])


@admin.register(Strategy)
class StrategyAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "owner",
        "symbol",
        "bar_size",
        "analyst",
        "schedule_cron",
        "is_active",
        "kill_switch",
        "archived_at",
        "last_execution_at",
        "next_execution_at",
    ]
    list_filter = ["is_active", "kill_switch", ("archived_at", admin.EmptyFieldListFilter), "analyst", "bar_size"]
    search_fields = ["name", "symbol__symbol", "owner__username"]
    list_select_related = ["owner", "symbol"]
    raw_id_fields = ["symbol", "prompt_template", "pinned_prompt_version", "broker_connection"]
    readonly_fields = [
        "periodic_task",
        "archived_at",
        "last_execution_at",
        "next_execution_at",
        "created_at",
        "updated_at",
    ]
    inlines = [StrategyIndicatorInline]
    actions = ["pause", "resume"]

    form = StrategyAdminForm

    # Saves and deletes go through the strategy service, so the strategy's PeriodicTask follows in the same
    # transaction (the admin wraps each change in one).
    def save_model(self, request, obj, form, change) -> None:
        strategy_save(strategy=obj)

    def has_change_permission(self, request, obj=None) -> bool:
        # an archived strategy is shown, never changed (its history stays as it ran)
        return super().has_change_permission(request, obj) and (obj is None or obj.archived_at is None)

    def delete_model(self, request, obj) -> None:
        strategy_archive(strategy=obj, anyway=True)  # never deleted: archived, its history kept

    def delete_queryset(self, request, queryset) -> None:
        for strategy in queryset:
            strategy_archive(strategy=strategy, anyway=True)

    @admin.action(description="Pause the selected strategies")
    def pause(self, request, queryset) -> None:
        for strategy in queryset:
            strategy_pause(strategy=strategy)

    @admin.action(description="Resume the selected strategies")
    def resume(self, request, queryset) -> None:
        for strategy in queryset.current():  # an archived strategy never runs again
            strategy_resume(strategy=strategy)


@admin.register(StrategyExecution)
class StrategyExecutionAdmin(admin.ModelAdmin):
    list_display = ["execution_id", "strategy", "status", "dry_run", "trigger", "started_at", "finished_at"]
    list_filter = ["status", "dry_run", "trigger"]
    search_fields = ["execution_id", "strategy__name"]
    list_select_related = ["strategy"]
    date_hierarchy = "started_at"
    readonly_fields = ["execution_id"]


# --- prompts and signals (their previews build a strategy's context: trading.analysis) ---------------------------


class PromptVersionInline(admin.TabularInline):
    model = PromptVersion
    extra = 0
    fields = readonly_fields = ("number", "sha256", "note", "created_by", "created_at")
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class PromptTemplateForm(forms.ModelForm):
    """The template's fields plus the body of its latest version. Saving a changed body adds a new version; the
    stored versions never change."""

    body = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 30, "cols": 120, "style": "font-family: monospace"}),
        help_text="Django template syntax. Variables: " + ", ".join(sorted(CONTEXT_VARIABLES)),
    )
    note = forms.CharField(required=False, max_length=200, help_text="what changed in this version")

    class Meta:
        model = PromptTemplate
        fields = ["name", "description", "prompt_type", "language", "owner", "strategy"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            latest = self.instance.versions.order_by("-number").first()
            if latest is not None:
                self.fields["body"].initial = latest.body

    def clean_body(self) -> str:
        body = self.cleaned_data["body"].replace("\r\n", "\n")
        try:
            check_template_body(body)
        except PromptRenderError as exc:
            raise forms.ValidationError(str(exc)) from None
        return body


@admin.register(PromptTemplate)
class PromptTemplateAdmin(admin.ModelAdmin):
    form = PromptTemplateForm
    list_display = ["name", "prompt_type", "language", "owner", "strategy", "latest_version", "created_at"]
    list_filter = ["prompt_type", "language"]
    search_fields = ["name", "owner__username"]
    list_select_related = ["owner", "strategy"]
    raw_id_fields = ["strategy", "owner"]
    inlines = [PromptVersionInline]

    @admin.display(description="latest")
    def latest_version(self, obj: PromptTemplate):
        latest = obj.versions.order_by("-number").first()
        return f"v{latest.number}" if latest else "-"

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        before = obj.versions.order_by("-number").first()
        version = prompt_version_create(
            template=obj, body=form.cleaned_data["body"], created_by=request.user, note=form.cleaned_data["note"]
        )
        if before is None or version.pk != before.pk:
            messages.info(request, f"Saved as version {version.number}.")


@admin.register(PromptVersion)
class PromptVersionAdmin(admin.ModelAdmin):
    """Versions are immutable: read them, preview them against a strategy's data, diff two of them."""

    list_display = ["template", "number", "note", "created_by", "created_at", "tools"]
    list_filter = ["template__prompt_type"]
    search_fields = ["template__name", "body"]
    list_select_related = ["template", "created_by"]
    fields = readonly_fields = ("template", "number", "body", "sha256", "note", "created_by", "created_at", "tools")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="")
    def tools(self, obj: PromptVersion):
        previous = obj.template.versions.filter(number__lt=obj.number).order_by("-number").first()
        preview = reverse("admin:signals_app_promptversion_preview", args=[obj.pk])
        if previous is None:
            return format_html('<a href="{}">preview</a>', preview)
        diff = reverse("admin:signals_app_promptversion_diff") + f"?a={previous.pk}&b={obj.pk}"
        return format_html('<a href="{}">preview</a> · <a href="{}">diff with v{}</a>', preview, diff, previous.number)

    def get_urls(self):
        extra = [
            path(
                "<int:pk>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="signals_app_promptversion_preview",
            ),
            path("diff/", self.admin_site.admin_view(self.diff_view), name="signals_app_promptversion_diff"),
        ]
        return extra + super().get_urls()

    def preview_view(self, request, pk: int):
        """The version rendered against the chosen strategy's latest bars and indicators (no charts are drawn)."""
        version = get_object_or_404(PromptVersion.objects.select_related("template"), pk=pk)
        strategies = Strategy.objects.select_related("symbol", "owner").order_by("owner__username", "name")
        chosen = strategies.filter(pk=request.GET.get("strategy")).first() if request.GET.get("strategy") else None
        rendered, error = "", ""
        if chosen is not None:
            try:
                rendered = render_prompt(version, steps.preview_context(chosen))
            except Exception as exc:  # shown to the editor, who is choosing what to fix
                error = f"{type(exc).__name__}: {exc}"
        context = {
            **self.admin_site.each_context(request),
            "title": f"Preview {version}",
            "version": version,
            "strategies": strategies,
            "chosen": chosen,
            "rendered": rendered,
            "error": error,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/signals_app/promptversion/preview.html", context)

    def diff_view(self, request):
        """A unified diff of two versions (?a=&b=, any two, of any templates)."""
        a = get_object_or_404(PromptVersion.objects.select_related("template"), pk=request.GET.get("a") or 0)
        b = get_object_or_404(PromptVersion.objects.select_related("template"), pk=request.GET.get("b") or 0)
        lines = difflib.unified_diff(
            a.body.splitlines(), b.body.splitlines(), fromfile=str(a), tofile=str(b), lineterm=""
        )
        rows = [(_diff_class(line), line) for line in lines]
        context = {
            **self.admin_site.each_context(request),
            "title": f"{a} → {b}",
            "a": a,
            "b": b,
            "rows": rows,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/signals_app/promptversion/diff.html", context)


def _diff_class(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "file"
    if line.startswith("@@"):
        return "hunk"
    return {"+": "added", "-": "removed"}.get(line[:1], "same")


@admin.register(TradingSignal)
class TradingSignalAdmin(admin.ModelAdmin):
    list_display = [
        "generated_at",
        "strategy",
        "symbol",
        "action",
        "entry_price",
        "stop_loss",
        "take_profit",
        "confidence",
        "outcome",
        "r_multiple",
    ]
    list_filter = ["action", "outcome", "analyst"]
    search_fields = ["strategy__name", "symbol__symbol", "reasoning"]
    list_select_related = ["strategy", "symbol"]
    raw_id_fields = ["strategy", "execution", "symbol", "prompt_version"]
    date_hierarchy = "generated_at"


@admin.register(PromptPerformance)
class PromptPerformanceAdmin(admin.ModelAdmin):
    list_display = ["prompt_version", "model", "signals", "buys", "sells", "holds", "wins", "losses", "hit_rate"]
    list_filter = ["model"]
    search_fields = ["prompt_version__template__name", "model"]
    list_select_related = ["prompt_version__template"]


@admin.register(LLMCall)
class LLMCallAdmin(admin.ModelAdmin):
    """The audit log: read only."""

    list_display = [
        "created_at",
        "analyst",
        "resolved_model",
        "strategy",
        "status",
        "stop_reason",
        "from_cache",
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cost_usd",
        "latency_ms",
    ]
    list_filter = ["analyst", "status", "from_cache", "stop_reason"]
    search_fields = ["request_id", "resolved_model", "strategy__name", "cache_key"]
    list_select_related = ["strategy"]
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
