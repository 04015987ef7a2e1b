"""Symbols: live search (local, and IBKR's contract search when connected), contract details, add to a strategy."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_GET

from brokers.interface import BrokerError
from brokers.models import BrokerConnection, BrokerKind
from brokers.services import symbols_from_broker
from core.pages import render_page
from market.models import Symbol
from market.symbol_search import symbols_matching
from trading import services as strategy_services
from trading.models import Strategy


def get_symbol(symbol_id) -> Symbol:
    """Symbols are shared reference data: every signed-in user may read any of them."""
    return get_object_or_404(Symbol, pk=symbol_id)


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
    strategies = Strategy.objects.for_owner(request.user).select_related("symbol").order_by("name")
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
