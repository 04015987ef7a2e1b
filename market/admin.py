from django.contrib import admin

from market.models import Bar, PlaybackCursor, Symbol


@admin.register(Symbol)
class SymbolAdmin(admin.ModelAdmin):
    list_display = ["symbol", "name", "exchange", "currency", "asset_type", "conid", "last_updated"]
    list_filter = ["asset_type", "exchange", "currency"]
    search_fields = ["symbol", "name", "conid"]


@admin.register(Bar)
class BarAdmin(admin.ModelAdmin):
    list_display = ["symbol", "bar_size", "timestamp", "open", "high", "low", "close", "volume"]
    list_filter = ["bar_size", "symbol"]
    search_fields = ["symbol__symbol"]
    list_select_related = ["symbol"]
    date_hierarchy = "timestamp"
    raw_id_fields = ["symbol"]
    show_full_result_count = False


@admin.register(PlaybackCursor)
class PlaybackCursorAdmin(admin.ModelAdmin):
    """Where each playback strategy stands. Deleting a row restarts that strategy's playback from the warm-up."""

    list_display = ["strategy", "bar_size", "cursor", "updated_at"]
    list_filter = ["bar_size"]
    search_fields = ["strategy__name"]
    list_select_related = ["strategy"]
    readonly_fields = ["strategy", "bar_size", "cursor", "started_at", "updated_at"]

    def has_add_permission(self, request) -> bool:
        return False
