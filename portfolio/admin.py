from typing import TYPE_CHECKING

from django.contrib import admin

from portfolio.models import PortfolioSnapshot, Position

# The admin classes are generic in django-stubs only: at run time they take no type arguments.
if TYPE_CHECKING:
    PositionAdminBase = admin.ModelAdmin[Position]
    SnapshotAdminBase = admin.ModelAdmin[PortfolioSnapshot]
else:
    PositionAdminBase = SnapshotAdminBase = admin.ModelAdmin


@admin.register(Position)
class PositionAdmin(PositionAdminBase):
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
class PortfolioSnapshotAdmin(SnapshotAdminBase):
    list_display = ["owner", "total_value", "cash", "positions_value", "realized_pnl", "unrealized_pnl", "taken_at"]
    search_fields = ["owner__username"]
    list_select_related = ["owner"]
    date_hierarchy = "taken_at"
