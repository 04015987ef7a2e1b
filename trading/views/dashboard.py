"""The dashboard: the strategies with their last run, recent signals, the portfolio at a glance, the kill switch."""

from __future__ import annotations

from typing import cast

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

from core.pages import render_page
from portfolio.services import drift_open
from trading import services
from trading.models import ExecutionStatus, Strategy
from trading.selectors import (
    STRATEGY_ROW_FIELDS,
    broker_cards,
    latest_snapshot,
    open_order_count,
    open_position_rows,
    recent_signals,
    strategies_with_last_run,
)


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    user = cast(User, request.user)  # login_required: a User
    # Plain value rows for the tables (model instances and their related ones cost more to build than the queries).
    strategies = list(
        strategies_with_last_run(user).values("id", "last_status", "last_execution_id", *STRATEGY_ROW_FIELDS)
    )
    context = {
        "drift": drift_open(owner=user),
        "snapshot": latest_snapshot(user),
        "positions": open_position_rows(user, limit=20),
        "strategies": strategies,
        "signals": recent_signals(user, strategies, limit=8),
        "connections": broker_cards(user),
        "open_orders": open_order_count(user),
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
    for strategy in Strategy.objects.for_owner(request.user).current().filter(kill_switch=not engage):
        services.strategy_update(strategy=strategy, kill_switch=engage)
        changed += 1
    verb = "engaged" if engage else "released"
    messages.success(request, f"Kill switch {verb} on {changed} strateg{'y' if changed == 1 else 'ies'}.")
    return redirect("dashboard")
