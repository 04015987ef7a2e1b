from django.contrib import admin

from portfolio.models import PortfolioSnapshot, Position


@admin.register(Position)
class PositionAdmin(admin.ModelAdmin):
    list_display = [
        "symbol",
        "owner",
        "strategy",
        "quantity",
        "average_cost",
        "stop_loss",
        "take_profit",
        "opened_at",
        "closed_at",
    ]
    list_filter = ["closed_at"]
    search_fields = ["symbol__symbol", "owner__username", "strategy__name"]
    list_select_related = ["symbol", "owner", "strategy"]


@admin.register(PortfolioSnapshot)
class PortfolioSnapshotAdmin(admin.ModelAdmin):
    list_display = ["owner", "total_value", "cash", "positions_value", "realized_pnl", "unrealized_pnl", "taken_at"]
    search_fields = ["owner__username"]
    list_select_related = ["owner"]
    date_hierarchy = "taken_at"
