"""Orders: a list with status (open ones refresh themselves), a detail with history and fills, and cancel. Every
write goes through `orders.services` (the manual order form is the portfolio's: a SELL closes a position)."""

from __future__ import annotations

from typing import cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET, require_POST

from brokers.interface import BrokerError
from core.pages import paginate, redirect_to, render_page
from orders import services
from orders.forms import OrderFilterForm
from orders.models import Order
from orders.querysets import OrderQuerySet
from orders.statuses import OPEN_STATUSES


def get_order_for_user(user: User, order_id: int) -> Order:
    return get_object_or_404(
        Order.objects.for_owner(user).select_related("symbol", "strategy", "signal", "broker_connection", "parent"),
        pk=order_id,
    )


def filtered_orders(user: User, params: QueryDict) -> tuple[OrderFilterForm, OrderQuerySet]:
    strategies = user.strategies.only("id", "name", "owner").order_by("name")
    form = OrderFilterForm(params or None, strategies=strategies)
    orders = Order.objects.for_owner(user).select_related("symbol", "strategy").order_by("-created_at")
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
    form, orders = filtered_orders(cast(User, request.user), request.GET)  # login_required: a User
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
    order = get_order_for_user(cast(User, request.user), order_id)  # login_required: a User
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
    order = get_order_for_user(cast(User, request.user), order_id)  # login_required: a User
    try:
        order = services.order_cancel(order=order)
    except (services.OrderInputError, BrokerError) as error:
        messages.error(request, f"Could not cancel: {error}")
    else:
        messages.success(request, f"Cancel sent: the order is {order.get_status_display().lower()}.")
    return redirect_to(request, "order_detail", order_id=order.pk)
