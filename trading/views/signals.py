"""Signals: the list (filtered, paged by id) and one signal with its charts, analysis, risk/reward and orders."""

from __future__ import annotations

import datetime as dt

from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.db.models.expressions import RawSQL
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from core.pages import PAGE_SIZE, Window, page_number, render_page
from lineage.models import LineageRecord
from lineage.steps import CHART_STEP, chart_entries
from orders.models import Order
from signals_app.forms import SignalFilterForm
from signals_app.listing import newest_signal_ids_sql
from signals_app.models import LLMCall, SignalAction, SignalOutcome, TradingSignal
from trading.models import Strategy
from trading.views.owned import get_signal_for_user

# --- signals ------------------------------------------------------------------------------------------------------

# What a row of the signals list shows; loading only these keeps fifty rows cheap to build.
SIGNAL_ROW_FIELDS = (
    "generated_at",
    "action",
    "entry_price",
    "stop_loss",
    "take_profit",
    "confidence",
    "analyst",
    "model",
    "outcome",
    "r_multiple",
    "strategy__name",
    "symbol__symbol",
)


def filtered_signals(user, params) -> tuple[SignalFilterForm, object, list, list[int]]:
    """The filter form, the filtered signals (not yet scoped to strategies), and the user's live strategies."""
    strategies = list(Strategy.objects.for_owner(user).only("id", "name").order_by("name"))
    form = SignalFilterForm(params or None, strategies=Strategy.objects.for_owner(user))
    signals = TradingSignal.objects.all()
    scope = [strategy.pk for strategy in strategies]
    if form.is_valid():
        data = form.cleaned_data
        if data.get("strategy"):
            scope = [data["strategy"].pk]
        if data.get("action"):
            signals = signals.filter(action=data["action"])
        if data.get("outcome"):
            signals = signals.filter(outcome=data["outcome"])
        zone = timezone.get_current_timezone()
        if data.get("since"):
            signals = signals.filter(generated_at__gte=dt.datetime.combine(data["since"], dt.time.min, tzinfo=zone))
        if data.get("until"):
            end = dt.datetime.combine(data["until"] + dt.timedelta(days=1), dt.time.min, tzinfo=zone)
            signals = signals.filter(generated_at__lt=end)
    query = (params or {}).get("q", "").strip() if params else ""
    if query:
        signals = signals.filter(Q(symbol__symbol__iexact=query) | Q(reasoning__icontains=query))
    return form, signals, strategies, scope


def signal_window(request: HttpRequest, signals, scope: list[int]) -> Window:
    """One page of the list, newest first, in one query: the per-strategy index merge picks the page's ids (one
    more than a page, to know whether there is a next one) as an IN subquery, and only the columns the table shows
    are read, as plain values (fifty model instances and their related ones cost more to build than the query)."""
    number = page_number(request)
    if not scope:
        return Window([], number, False)
    sql, params = newest_signal_ids_sql(signals, scope, offset=(number - 1) * PAGE_SIZE, limit=PAGE_SIZE + 1)
    rows = list(
        TradingSignal.objects.filter(pk__in=RawSQL(sql, params))
        .order_by("-generated_at", "-id")
        .values("id", *SIGNAL_ROW_FIELDS)
    )
    return Window(rows[:PAGE_SIZE], number, len(rows) > PAGE_SIZE)


@login_required
@require_GET
def signal_list(request: HttpRequest) -> HttpResponse:
    form, signals, strategies, scope = filtered_signals(request.user, request.GET)
    page = signal_window(request, signals, scope)
    context = {
        "form": form,
        "page": page,
        "strategies": strategies,
        "actions": SignalAction.choices,
        "outcomes": SignalOutcome.choices,
    }
    return render_page(request, "signals_app/signal_list.html", context, partial="signal-table")


def risk_reward(signal: TradingSignal) -> dict | None:
    if not (signal.entry_price and signal.stop_loss and signal.take_profit):
        return None
    risk = abs(signal.entry_price - signal.stop_loss)
    reward = abs(signal.take_profit - signal.entry_price)
    return {"risk": risk, "reward": reward, "ratio": (reward / risk) if risk else None}


@login_required
@require_GET
def signal_detail(request: HttpRequest, signal_id: int) -> HttpResponse:
    signal = get_signal_for_user(request.user, signal_id)
    charts, calls, analysis = [], [], None
    if signal.execution_id:
        steps = {
            r.step_name: r
            for r in LineageRecord.objects.filter(
                execution_id=signal.execution_id, step_name__in=[CHART_STEP, "llm_analysis"]
            )
        }
        if CHART_STEP in steps:
            charts = chart_entries(steps[CHART_STEP].output_data)
        analysis = steps.get("llm_analysis")
        calls = list(LLMCall.objects.filter(execution_id=signal.execution_id).order_by("created_at"))
    context = {
        "signal": signal,
        "charts": charts,
        "analysis": analysis,
        "calls": calls,
        "rr": risk_reward(signal),
        "orders": Order.objects.filter(signal=signal).select_related("symbol").order_by("created_at"),
    }
    return render_page(request, "signals_app/signal_detail.html", context)
