from django import forms
from django.contrib import admin
from django.db import models

from trading.models import (
    BrokerConnection,
    IndicatorConfig,
    Notification,
    Strategy,
    StrategyExecution,
    StrategyIndicator,
    UserProfile,
)
from trading.services import (
    cron_fields,
    strategy_delete,
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
        "last_execution_at",
        "next_execution_at",
    ]
    list_filter = ["is_active", "kill_switch", "analyst", "bar_size", "market_data_source"]
    search_fields = ["name", "symbol__symbol", "owner__username"]
    list_select_related = ["owner", "symbol"]
    raw_id_fields = ["symbol", "prompt_template", "pinned_prompt_version", "broker_connection"]
    readonly_fields = ["periodic_task", "last_execution_at", "next_execution_at", "created_at", "updated_at"]
    inlines = [StrategyIndicatorInline]
    actions = ["pause", "resume"]

    form = StrategyAdminForm

    # Saves and deletes go through the strategy service, so the strategy's PeriodicTask follows in the same
    # transaction (the admin wraps each change in one).
    def save_model(self, request, obj, form, change) -> None:
        strategy_save(strategy=obj)

    def delete_model(self, request, obj) -> None:
        strategy_delete(strategy=obj)

    def delete_queryset(self, request, queryset) -> None:
        for strategy in queryset:
            strategy_delete(strategy=strategy)

    @admin.action(description="Pause the selected strategies")
    def pause(self, request, queryset) -> None:
        for strategy in queryset:
            strategy_pause(strategy=strategy)

    @admin.action(description="Resume the selected strategies")
    def resume(self, request, queryset) -> None:
        for strategy in queryset:
            strategy_resume(strategy=strategy)


@admin.register(StrategyExecution)
class StrategyExecutionAdmin(admin.ModelAdmin):
    list_display = ["execution_id", "strategy", "status", "dry_run", "trigger", "started_at", "finished_at"]
    list_filter = ["status", "dry_run", "trigger"]
    search_fields = ["execution_id", "strategy__name"]
    list_select_related = ["strategy"]
    date_hierarchy = "started_at"
    readonly_fields = ["execution_id"]


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["created_at", "kind", "subject", "owner", "strategy", "email_result", "webhook_result"]
    list_filter = ["kind", "email_result", "webhook_result"]
    search_fields = ["subject", "body", "owner__username", "webhook_error", "email_error"]
    list_select_related = ["owner", "strategy"]
    date_hierarchy = "created_at"
    raw_id_fields = ["owner", "strategy", "order", "execution"]
