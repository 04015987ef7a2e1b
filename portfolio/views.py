"""The portfolio: positions valued now, P&L, statistics, the equity curve drawn from the snapshots, and the trader's
own orders (a manual SELL closes part of a position)."""

from __future__ import annotations

from decimal import Decimal
from typing import cast

from celery import current_app
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET, require_POST

from brokers.interface import BrokerError
from brokers.models import BrokerConnection
from core.pages import redirect_to, render_page
from orders.forms import ManualOrderForm
from orders.services import OrderInputError, order_client_id
from portfolio import services
from portfolio.models import PortfolioSnapshot, Position, Reconciliation

CURVE_POINTS = 400
CURVE_WIDTH, CURVE_HEIGHT, PAD_LEFT, PAD_BOTTOM = 800, 260, 70, 24


def get_position_for_user(user: User, position_id: int) -> Position:
    return get_object_or_404(Position.objects.for_owner(user), pk=position_id)


def equity_curve(snapshots: list[PortfolioSnapshot]) -> dict[str, object] | None:
    """An SVG polyline of total value over time, thinned to at most CURVE_POINTS points (oldest first)."""
    if len(snapshots) < 2:
        return None
    step = max(1, len(snapshots) // CURVE_POINTS)
    points = snapshots[::step]
    if points[-1] is not snapshots[-1]:
        points.append(snapshots[-1])
    values = [float(s.total_value) for s in points]
    low, high = min(values), max(values)
    span = (high - low) or max(abs(high) * 0.01, 1.0)
    low, high = low - span * 0.05, high + span * 0.05
    first, last = points[0].taken_at.timestamp(), points[-1].taken_at.timestamp()
    width, height = CURVE_WIDTH - PAD_LEFT - 10, CURVE_HEIGHT - PAD_BOTTOM - 10

    def xy(snapshot: PortfolioSnapshot, value: float) -> tuple[float, float]:
        x = PAD_LEFT + (snapshot.taken_at.timestamp() - first) / ((last - first) or 1) * width
        y = 10 + (1 - (value - low) / (high - low)) * height
        return round(x, 1), round(y, 1)

    coords = [xy(s, v) for s, v in zip(points, values, strict=True)]
    line = " ".join(f"{x},{y}" for x, y in coords)
    baseline = 10 + height
    area = f"{coords[0][0]},{baseline} {line} {coords[-1][0]},{baseline}"
    ticks = [
        {"y": round(10 + (1 - i / 4) * height, 1), "value": Decimal(str(low + (high - low) * i / 4))} for i in range(5)
    ]
    return {
        "line": line,
        "area": area,
        "ticks": ticks,
        "start": points[0].taken_at,
        "end": points[-1].taken_at,
        "width": CURVE_WIDTH,
        "height": CURVE_HEIGHT,
        "pad_left": PAD_LEFT,
        "baseline": baseline,
        "right": CURVE_WIDTH - 10,
        "change": points[-1].total_value - points[0].total_value,
    }


@login_required
@require_GET
def portfolio(request: HttpRequest) -> HttpResponse:
    user = cast(User, request.user)  # login_required: a User
    valuation = services.portfolio_valuation(owner=user)
    positions = {p.pk: p for p in Position.objects.for_owner(user).open().select_related("symbol", "strategy")}
    rows = [{"value": v, "position": positions.get(v.position_id)} for v in valuation.positions]
    snapshots = list(
        PortfolioSnapshot.objects.filter(owner=user).order_by("-taken_at").only("total_value", "taken_at")[:5000]
    )
    snapshots.reverse()
    context = {
        "drift": services.drift_open(owner=user),
        "valuation": valuation,
        "rows": rows,
        "stats": services.portfolio_statistics(owner=user),
        "curve": equity_curve(snapshots),
        "closed": Position.objects.for_owner(user)
        .filter(closed_at__isnull=False)
        .select_related("symbol", "strategy")[:20],
    }
    return render_page(request, "portfolio/portfolio.html", context)


@login_required
@require_POST
def portfolio_refresh(request: HttpRequest) -> HttpResponse:
    snapshot = services.snapshot_take(owner=cast(User, request.user))  # login_required: a User
    messages.success(request, f"Snapshot taken: {snapshot.total_value:,.2f} total.")
    return redirect_to(request, "portfolio")


# --- manual orders -------------------------------------------------------------------------------------------------


@login_required
def order_new(request: HttpRequest) -> HttpResponse:
    user = cast(User, request.user)  # login_required: a User
    initial = {"client_order_id": order_client_id()}
    if request.GET.get("symbol"):
        initial["symbol"] = request.GET["symbol"]
    form = ManualOrderForm(request.POST or None, initial=initial, owner=user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            order = services.manual_order_place(
                owner=user,
                broker_connection=data["broker_connection"],
                symbol=data["symbol"],
                side=data["side"],
                quantity=data["quantity"],
                order_type=data["order_type"],
                limit_price=data["limit_price"],
                stop_price=data["stop_price"],
                tif=data["tif"],
                client_order_id=data["client_order_id"],
            )
        except OrderInputError as error:
            form.add_error(None, str(error))
        except BrokerError as error:
            form.add_error(None, f"The broker did not take the order: {error}")
        else:
            if order.status == "REJECTED":
                messages.error(request, f"Rejected: {order.status_reason}")
            else:
                messages.success(request, f"Order {order.client_order_id} is {order.get_status_display().lower()}.")
            return redirect_to(request, "order_detail", order_id=order.pk)
    connections = cast("forms.ModelChoiceField[BrokerConnection]", form.fields["broker_connection"]).queryset
    assert connections is not None  # ManualOrderForm gives the field the owner's accounts
    has_account = connections.exists()
    return render_page(request, "orders/order_new.html", {"form": form, "has_account": has_account}, partial="form")


# --- reconciliation ------------------------------------------------------------------------------------------------


@login_required
@require_POST
def portfolio_reconcile(request: HttpRequest) -> HttpResponse:
    """Compare each of the user's accounts with its broker again, in the worker (`trading.reconcile_connection`)."""
    user = cast(User, request.user)  # login_required: a User
    connections = list(BrokerConnection.objects.filter(owner=user).values_list("pk", flat=True))
    for connection_id in connections:
        current_app.send_task("trading.reconcile_connection", args=[connection_id])
    messages.success(request, f"Checking {len(connections)} account{'s' if len(connections) != 1 else ''} again.")
    return redirect_to(request, "portfolio")


@login_required
@require_POST
def portfolio_drift_accept(request: HttpRequest, reconciliation_id: int) -> HttpResponse:
    """The owner takes the broker's side of one symbol's difference: our books are adjusted to it."""
    user = cast(User, request.user)  # login_required: a User
    reconciliation = get_object_or_404(
        Reconciliation.objects.filter(broker_connection__owner=user).select_related("broker_connection"),
        pk=reconciliation_id,
    )
    form = DriftAcceptForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            messages.error(request, " ".join(str(error) for error in errors))
        return redirect_to(request, "portfolio")
    symbol = form.cleaned_data["symbol"]
    try:
        trades = services.drift_accept_broker(
            reconciliation=reconciliation, symbol=symbol, by=user, price=form.cleaned_data["price"]
        )
    except services.ResolutionError as error:
        messages.error(request, str(error))
    else:
        refs = ", ".join(t.broker_execution_id for t in trades)
        messages.success(request, f"Booked the broker's {symbol} position ({refs}); checking the account again.")
        current_app.send_task("trading.reconcile_connection", args=[reconciliation.broker_connection_id])
    return redirect_to(request, "portfolio")


class DriftAcceptForm(forms.Form):
    symbol = forms.CharField(max_length=32)
    price = forms.DecimalField(
        required=False,
        min_value=Decimal("0.000001"),
        max_digits=18,
        decimal_places=6,
        error_messages={"invalid": "The price must be a number, like 127.55."},
    )
