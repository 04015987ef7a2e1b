"""The dashboard: the strategies with their last run, recent signals, the portfolio at a glance, the kill switch."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import DecimalField, ExpressionWrapper, F, OuterRef, Subquery
from django.db.models.expressions import RawSQL
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

from brokers.models import BrokerConnection
from core.pages import render_page
from orders.models import Order
from portfolio.models import PortfolioSnapshot, Position
from portfolio.services import portfolio_valuation
from signals_app.listing import newest_signal_ids_sql
from signals_app.models import TradingSignal
from trading import services
from trading.models import ExecutionStatus, Strategy, StrategyExecution

STRATEGY_ROW_FIELDS = (
    "name",
    "bar_size",
    "analyst",
    "schedule_cron",
    "schedule_timezone",
    "kill_switch",
    "is_active",
    "last_execution_at",
    "next_execution_at",
    "symbol__symbol",
)


def strategies_with_last_run(user):
    """The user's strategies (the columns a list shows), each with its latest execution's status and id, in one
    query."""
    latest = StrategyExecution.objects.filter(strategy=OuterRef("pk")).order_by("-started_at")
    return (
        Strategy.objects.for_owner(user)
        .live()
        .select_related("symbol")
        .only(*STRATEGY_ROW_FIELDS)
        .annotate(
            last_status=Subquery(latest.values("status")[:1]),
            last_execution_id=Subquery(latest.values("execution_id")[:1]),
        )
        .order_by("name")
    )


# --- dashboard ----------------------------------------------------------------------------------------------------


RECENT_SIGNAL_FIELDS = ("id", "generated_at", "action", "entry_price", "confidence", "strategy__name", "symbol__symbol")


def recent_signals(user, strategies: list[dict], *, limit: int) -> list[dict]:
    """The newest signals of these strategies, newest first, in one query: the per-strategy index merge
    (`newest_signal_ids_sql`) picks the ids, and only the columns the dashboard shows are read, as plain values
    (building eight model instances and their related ones cost more than the query)."""
    if not strategies:
        return []
    sql, params = newest_signal_ids_sql(
        TradingSignal.objects.all(), [s["id"] for s in strategies], offset=0, limit=limit
    )
    return list(
        TradingSignal.objects.filter(pk__in=RawSQL(sql, params))
        .order_by("-generated_at", "-id")
        .values(*RECENT_SIGNAL_FIELDS)
    )


POSITION_ROW_FIELDS = (
    "quantity",
    "average_cost",
    "stop_loss",
    "take_profit",
    "symbol__symbol",
    "strategy__name",
    "cost_basis",
)

# What the dashboard's broker card shows: the name, the kind, and what `can_trade` reads.
CONNECTION_SUMMARY_FIELDS = ("name", "kind", "authenticated", "connected", "competing")


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    user = request.user
    snapshot = PortfolioSnapshot.objects.filter(owner=user).order_by("-taken_at").first()
    if snapshot is None:  # before the first scheduled snapshot: value the portfolio now instead
        valuation = portfolio_valuation(owner=user)
        snapshot = PortfolioSnapshot(
            owner=user,
            cash=valuation.cash,
            positions_value=valuation.positions_value,
            total_value=valuation.total_value,
            realized_pnl=valuation.realized_pnl,
            unrealized_pnl=valuation.unrealized_pnl,
            taken_at=valuation.at,
        )
    # Plain value rows for the tables (model instances and their related ones cost more to build than the queries).
    strategies = list(
        strategies_with_last_run(user).values("id", "last_status", "last_execution_id", *STRATEGY_ROW_FIELDS)
    )
    context = {
        "snapshot": snapshot,
        "positions": list(
            Position.objects.for_owner(user)
            .live()
            .open()
            .annotate(cost_basis=ExpressionWrapper(F("quantity") * F("average_cost"), output_field=DecimalField()))
            .values(*POSITION_ROW_FIELDS)[:20]
        ),
        "strategies": strategies,
        "signals": recent_signals(user, strategies, limit=8),
        "connections": list(
            BrokerConnection.objects.filter(owner=user, replay_of__isnull=True).only(*CONNECTION_SUMMARY_FIELDS)
        ),
        "open_orders": Order.objects.for_owner(user).live().open().count(),
        "global_kill_switch": settings.TRADING_KILL_SWITCH,
        "killed": sum(1 for s in strategies if s["kill_switch"]),
        "running": any(s["last_status"] == ExecutionStatus.RUNNING for s in strategies),
    }
    return render_page(request, "trading/dashboard.html", context, partial="strategies")


@login_required
@require_POST
def kill_switch(request: HttpRequest) -> HttpResponse:
    """Engage or release the kill switch on every one of the user's strategies (the global one is an env var)."""
    engage = request.POST.get("engage") == "on"
    changed = 0
    for strategy in Strategy.objects.for_owner(request.user).filter(kill_switch=not engage):
        services.strategy_update(strategy=strategy, kill_switch=engage)
        changed += 1
    verb = "engaged" if engage else "released"
    messages.success(request, f"Kill switch {verb} on {changed} strateg{'y' if changed == 1 else 'ies'}.")
    return redirect("dashboard")
