"""Symbols (live search, contract details, add to a strategy) and the charts of each strategy and run."""

from __future__ import annotations

import mimetypes

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_GET

from lineage.models import LineageRecord
from market.models import Symbol
from market.symbol_search import symbols_from_broker, symbols_matching
from trading import services as strategy_services
from trading.broker import BrokerError
from trading.models import BrokerConnection, BrokerKind, Strategy
from trading.pages import paginate, render_page

CHART_STEP = "generate_charts"


def get_symbol(symbol_id) -> Symbol:
    """Symbols are shared reference data: every signed-in user may read any of them."""
    return get_object_or_404(Symbol, pk=symbol_id)


def get_chart_step_for_user(user, execution_id) -> LineageRecord:
    return get_object_or_404(
        LineageRecord.objects.for_owner(user).select_related("execution__strategy__symbol"),
        execution_id=execution_id,
        step_name=CHART_STEP,
    )


def _ibkr_connection(user) -> BrokerConnection | None:
    return BrokerConnection.objects.filter(owner=user, kind=BrokerKind.IBKR).first()


# --- symbols --------------------------------------------------------------------------------------------------


@login_required
@require_GET
def symbol_list(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    connection = _ibkr_connection(request.user)
    contracts, broker_error = [], ""
    if query and request.GET.get("source") == "ibkr" and connection is not None:
        try:
            contracts = symbols_from_broker(connection, query)
        except BrokerError as error:
            broker_error = str(error) or error.__class__.__name__
    context = {
        "query": query,
        "results": symbols_matching(query) if query else Symbol.objects.order_by("symbol")[:50],
        "connection": connection,
        "contracts": contracts,
        "broker_error": broker_error,
    }
    return render_page(request, "market/symbols.html", context, partial="symbol-results")


@login_required
@require_GET
def symbol_search(request: HttpRequest) -> HttpResponse:
    """The results list alone (live search as you type); `pick` names a radio input for a form to submit."""
    query = request.GET.get("q", "").strip()
    context = {"results": symbols_matching(query), "query": query, "pick": request.GET.get("pick", "")}
    return render_page(request, "market/_symbol_results.html", context)


@login_required
def symbol_detail(request: HttpRequest, symbol_id: int) -> HttpResponse:
    symbol = get_symbol(symbol_id)
    strategies = Strategy.objects.for_owner(request.user).live().select_related("symbol").order_by("name")
    if request.method == "POST":
        strategy = get_object_or_404(strategies, pk=request.POST.get("strategy"))
        try:
            strategy_services.strategy_update(strategy=strategy, symbol=symbol)
        except ValidationError as error:
            messages.error(request, "; ".join(error.messages))
        else:
            messages.success(request, f"{strategy.name} now trades {symbol.symbol}.")
            return redirect("strategy_detail", strategy_id=strategy.pk)
    context = {
        "symbol": symbol,
        "strategies": strategies,
        "using": [s for s in strategies if s.symbol_id == symbol.pk],
        "bar_count": symbol.bars.count(),
        "last_bar": symbol.bars.order_by("-timestamp").first(),
    }
    return render_page(request, "market/symbol_detail.html", context)


# --- charts ---------------------------------------------------------------------------------------------------


def chart_entries(output_data: dict) -> list[dict]:
    """The charts a generate_charts step stored, as dicts with at least `key` (the storage key)."""
    raw = output_data.get("charts") or output_data.get("chart_keys") or []
    entries = []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, str):
            entries.append({"key": item})
        elif isinstance(item, dict) and (item.get("key") or item.get("storage_key")):
            entries.append({**item, "key": item.get("key") or item.get("storage_key")})
    return entries


@login_required
@require_GET
def chart_list(request: HttpRequest) -> HttpResponse:
    user = request.user
    steps = (
        LineageRecord.objects.for_owner(user)
        .live()
        .filter(step_name=CHART_STEP, status="success")
        .select_related("execution__strategy__symbol")
        .defer("input_data", "metadata")
        .order_by("-recorded_at")
    )
    strategy_id = request.GET.get("strategy", "")
    strategy = None
    if strategy_id.isdigit():
        strategy = get_object_or_404(Strategy.objects.for_owner(user), pk=strategy_id)
        steps = steps.filter(execution__strategy=strategy)
    page = paginate(request, steps, per_page=12)
    runs = [{"step": step, "charts": chart_entries(step.output_data)} for step in page]
    context = {
        "page": page,
        "runs": runs,
        "strategy": strategy,
        "strategies": Strategy.objects.for_owner(user).live().only("id", "name").order_by("name"),
    }
    return render_page(request, "market/charts.html", context, partial="chart-runs")


@login_required
@require_GET
def chart_image(request: HttpRequest, execution_id, index: int) -> HttpResponse:
    """One stored chart of one of the user's runs, streamed from storage (local files or S3) after the owner check."""
    step = get_chart_step_for_user(request.user, execution_id)
    entries = chart_entries(step.output_data)
    if index >= len(entries):
        raise Http404("no such chart")
    key = entries[index]["key"]
    try:
        handle = default_storage.open(key, "rb")
    except (FileNotFoundError, OSError):
        raise Http404("chart file missing from storage") from None
    content_type = mimetypes.guess_type(key)[0] or "image/png"
    response = FileResponse(handle, content_type=content_type)
    response["Cache-Control"] = "private, max-age=86400"  # a stored chart never changes
    return response
