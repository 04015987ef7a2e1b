from django.contrib import admin

from signals_app.models import PromptPerformance, PromptTemplate, PromptVersion, TradingSignal


class PromptVersionInline(admin.TabularInline):
    model = PromptVersion
    extra = 0
    fields = ["number", "sha256", "note", "created_at"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(PromptTemplate)
class PromptTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "prompt_type", "language", "owner", "strategy", "created_at"]
    list_filter = ["prompt_type", "language"]
    search_fields = ["name", "owner__username"]
    list_select_related = ["owner", "strategy"]
    raw_id_fields = ["strategy"]
    inlines = [PromptVersionInline]


@admin.register(PromptVersion)
class PromptVersionAdmin(admin.ModelAdmin):
    list_display = ["template", "number", "sha256", "created_by", "created_at"]
    list_filter = ["template__prompt_type"]
    search_fields = ["template__name", "body"]
    list_select_related = ["template", "created_by"]
    readonly_fields = ["sha256", "created_at"]


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
