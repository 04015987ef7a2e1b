"""The dashboard: the strategies with their last run, recent signals, the portfolio at a glance, the kill switch."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import DecimalField, ExpressionWrapper, F
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

from brokers.models import BrokerConnection
from core.pages import render_page
from orders.models import Order
from portfolio.models import PortfolioSnapshot, Position
from portfolio.services import portfolio_valuation
from trading import services
from trading.models import ExecutionStatus, Strategy
from trading.selectors import STRATEGY_ROW_FIELDS, recent_signals, strategies_with_last_run

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
