"""Orders: a list with status (open ones refresh themselves), a detail with history and fills, cancel, and the
manual order form. Every write goes through `orders.services`."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET, require_POST

from orders import services
from orders.forms import ManualOrderForm, OrderFilterForm
from orders.models import OPEN_STATUSES, Order
from trading.broker import BrokerError
from trading.models import Strategy
from trading.pages import paginate, redirect_to, render_page
from trading.views import live_orders


def get_order_for_user(user, order_id) -> Order:
    return get_object_or_404(
        Order.objects.for_owner(user).select_related("symbol", "strategy", "signal", "broker_connection", "parent"),
        pk=order_id,
    )


def filtered_orders(user, params):
    strategies = Strategy.objects.for_owner(user).live().only("id", "name").order_by("name")
    form = OrderFilterForm(params or None, strategies=strategies)
    orders = live_orders(user).select_related("symbol", "strategy").order_by("-created_at")
    if form.is_valid():
        status = form.cleaned_data.get("status")
        if status == "open":
            orders = orders.open()
        elif status:
            orders = orders.filter(status=status)
        if form.cleaned_data.get("side"):
            orders = orders.filter(side=form.cleaned_data["side"])
        if form.cleaned_data.get("strategy"):
            orders = orders.filter(strategy=form.cleaned_data["strategy"])
    return form, orders


@login_required
@require_GET
def order_list(request: HttpRequest) -> HttpResponse:
    form, orders = filtered_orders(request.user, request.GET)
    page = paginate(request, orders)
    context = {
        "form": form,
        "page": page,
        "polling": any(o.status in OPEN_STATUSES or o.status in ("PENDING", "SUBMITTING") for o in page),
    }
    return render_page(request, "orders/order_list.html", context, partial="order-table")


@login_required
@require_GET
def order_detail(request: HttpRequest, order_id: int) -> HttpResponse:
    order = get_order_for_user(request.user, order_id)
    context = {
        "order": order,
        "history": order.status_changes.order_by("changed_at", "id"),
        "fills": order.trades.order_by("executed_at"),
        "children": order.children.select_related("symbol").order_by("leg"),
        "polling": not order.is_terminal,
        "notional": order.quantity * (order.limit_price or order.average_fill_price or 0) or None,
    }
    return render_page(request, "orders/order_detail.html", context, partial="order-status")


@login_required
@require_POST
def order_cancel(request: HttpRequest, order_id: int) -> HttpResponse:
    order = get_order_for_user(request.user, order_id)
    try:
        order = services.order_cancel(order=order)
    except (services.OrderInputError, BrokerError) as error:
        messages.error(request, f"Could not cancel: {error}")
    else:
        messages.success(request, f"Cancel sent: the order is {order.get_status_display().lower()}.")
    return redirect_to(request, "order_detail", order_id=order.pk)


@login_required
def order_new(request: HttpRequest) -> HttpResponse:
    initial = {"client_order_id": services.order_client_id()}
    if request.GET.get("symbol"):
        initial["symbol"] = request.GET["symbol"]
    form = ManualOrderForm(request.POST or None, initial=initial, owner=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            order = services.order_place(
                owner=request.user,
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
        except services.OrderInputError as error:
            form.add_error(None, str(error))
        except BrokerError as error:
            form.add_error(None, f"The broker did not take the order: {error}")
        else:
            if order.status == "REJECTED":
                messages.error(request, f"Rejected: {order.status_reason}")
            else:
                messages.success(request, f"Order {order.client_order_id} is {order.get_status_display().lower()}.")
            return redirect_to(request, "order_detail", order_id=order.pk)
    has_account = form.fields["broker_connection"].queryset.exists()
    return render_page(request, "orders/order_new.html", {"form": form, "has_account": has_account}, partial="form")
