"""What the trading layer tells a trader, in words: fills (and the stops and targets they hit), rejections, failed
runs, runs skipped for a reason the trader must act on, and the daily summary. Sending, routing and delivery state
are the notifications app's (notifications.services.notify); this module only says what happened.

A replay's runs and orders notify nobody (notify refuses rows marked as a replay's)."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from django.contrib.auth.models import User
from django.db.models import Count, Sum
from django.urls import reverse

from notifications.models import Notification, NotificationKind
from notifications.services import notify
from orders.models import OrderLeg, Trade
from signals_app.models import LLMCall, TradingSignal
from trading.models import SkipReason, StrategyExecution

CENT = Decimal("0.01")
FILL_KINDS = {OrderLeg.STOP: NotificationKind.STOP_HIT, OrderLeg.TARGET: NotificationKind.TARGET_HIT}
# Skips the trader must act on (log in again, fix the data feed, raise a budget, resolve a drift or a protection).
# A paused strategy, a held claim, an expired trigger, a closed market or an archived strategy is no news.
ACTIONABLE_SKIPS = {
    SkipReason.SESSION_DOWN,
    SkipReason.STALE_DATA,
    SkipReason.LLM_BUDGET,
    SkipReason.DRIFT_HALT,
    SkipReason.PROTECTION_HALT,
}


def quantity_text(value) -> str:
    """A quantity as a person writes it: 76, 0.5 (the stored 76.000000 without its trailing zeros)."""
    if value is None:
        return "-"
    return format(Decimal(value).normalize(), "f")


def money_text(value) -> str:
    """An amount as money, to the cent: 1,234.50, -3.10."""
    if value is None:
        return "-"
    return f"{Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP):,f}"


def price_text(value) -> str:
    """A price as money (99.50, 1,234.50); a sub-cent price keeps its digits (0.1234)."""
    if value is None:
        return "-"
    amount = Decimal(value)
    cents = amount.quantize(CENT, rounding=ROUND_HALF_UP)
    return f"{cents if cents == amount else amount.normalize():,f}"


def notify_fill(*, trade) -> Notification | None:
    """A fill: `stop_hit` or `target_hit` when it is a bracket's stop or target, else `order_filled`."""
    order = trade.order
    kind = FILL_KINDS.get(order.leg, NotificationKind.ORDER_FILLED)
    quantity, price = quantity_text(trade.quantity), price_text(trade.price)
    headline = {NotificationKind.STOP_HIT: "Stop hit", NotificationKind.TARGET_HIT: "Target hit"}.get(kind, "Filled")
    subject = f"{headline}: {order.side} {quantity} {order.symbol.symbol} @ {price}"
    body = (
        f"{order.side} {quantity} {order.symbol.symbol} filled at {price} "
        f"(order {order.client_order_id}, {order.get_leg_display()}, status {order.status}).\n"
        f"Realised P&L of this fill: {money_text(trade.realized_pnl)}. Commission: {money_text(trade.commission)}."
    )
    return notify(
        owner=order.owner,
        kind=kind,
        subject=subject,
        body=body,
        path=reverse("order_detail", args=[order.pk]),
        order=order,
        strategy=order.strategy,
        data={
            "order_id": order.pk,
            "client_order_id": order.client_order_id,
            "strategy_id": order.strategy_id,
            "symbol": order.symbol.symbol,
            "side": order.side,
            "leg": order.leg,
            "quantity": trade.quantity,
            "price": trade.price,
            "realized_pnl": trade.realized_pnl,
            "executed_at": trade.executed_at,
        },
    )


def notify_rejection(*, order) -> Notification | None:
    subject = f"Rejected: {order.side} {quantity_text(order.quantity)} {order.symbol.symbol}"
    body = f"Order {order.client_order_id} was rejected: {order.status_reason or 'no reason given'}."
    return notify(
        owner=order.owner,
        kind=NotificationKind.ORDER_REJECTED,
        subject=subject,
        body=body,
        path=reverse("order_detail", args=[order.pk]),
        order=order,
        strategy=order.strategy,
        data={
            "order_id": order.pk,
            "client_order_id": order.client_order_id,
            "strategy_id": order.strategy_id,
            "reason": order.status_reason,
        },
    )


def notify_run_failed(*, execution: StrategyExecution) -> Notification | None:
    strategy = execution.strategy
    return notify(
        owner=strategy.owner,
        kind=NotificationKind.RUN_FAILED,
        subject=f"Run failed: {strategy.name}",
        body=f"The run {execution.pk} of {strategy.name} failed.\n\n{execution.error}",
        path=f"{reverse('lineage')}?execution={execution.pk}",
        execution=execution,
        strategy=strategy,
        data={"execution_id": execution.pk, "strategy_id": strategy.pk, "error": execution.error},
    )


def notify_run_skipped(*, execution: StrategyExecution) -> Notification | None:
    """A run skipped for a reason the trader must act on, once per spell: while the strategy's previous run was
    skipped for the same reason, the trader has been told already."""
    if execution.skip_reason not in ACTIONABLE_SKIPS:
        return None
    strategy = execution.strategy
    previous = (
        StrategyExecution.objects.filter(strategy=strategy, started_at__lt=execution.started_at)
        .order_by("-started_at")
        .values_list("skip_reason", flat=True)
        .first()
    )
    if previous == execution.skip_reason:
        return None
    reason = execution.get_skip_reason_display()
    return notify(
        owner=strategy.owner,
        kind=NotificationKind.RUN_SKIPPED,
        subject=f"Run skipped: {strategy.name} ({reason})",
        body=(
            f"The run {execution.pk} of {strategy.name} was skipped: {execution.error or reason}.\n"
            "Its next runs are skipped too until this is resolved; you are told again when it happens anew."
        ),
        path=f"{reverse('lineage')}?execution={execution.pk}",
        execution=execution,
        strategy=strategy,
        data={"execution_id": execution.pk, "strategy_id": strategy.pk, "skip_reason": execution.skip_reason},
    )


def notify_daily_summary(*, owner: User, day: dt.date, start: dt.datetime, end: dt.datetime) -> Notification | None:
    """The day in a few lines: realised P&L, runs by status, signals by action, LLM cost. Said only for a user
    whose strategies did something that day."""
    runs = dict(
        StrategyExecution.objects.for_owner(owner)
        .filter(started_at__gte=start, started_at__lt=end)
        .values_list("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )
    if not runs:
        return None
    signals = dict(
        TradingSignal.objects.filter(strategy__owner=owner, generated_at__gte=start, generated_at__lt=end)
        .values_list("action")
        .annotate(n=Count("pk"))
        .values_list("action", "n")
    )
    trades = Trade.objects.filter(order__owner=owner, executed_at__gte=start, executed_at__lt=end)
    booked = trades.aggregate(total=Sum("realized_pnl"), fills=Count("pk"))
    pnl, fills = booked["total"] or Decimal("0"), booked["fills"]
    cost = LLMCall.objects.filter(strategy__owner=owner, created_at__gte=start, created_at__lt=end).aggregate(
        total=Sum("cost_usd")
    )["total"] or Decimal("0")

    def counts(values: dict) -> str:
        return ", ".join(f"{n} {name}" for name, n in sorted(values.items())) or "none"

    body = (
        f"Realised P&L: {money_text(pnl)} from {fills} fills.\n"
        f"Runs: {counts(runs)}.\n"
        f"Signals: {counts(signals)}.\n"
        f"LLM cost: ${money_text(cost)}."
    )
    return notify(
        owner=owner,
        kind=NotificationKind.DAILY_SUMMARY,
        subject=f"Daily summary {day:%Y-%m-%d}: P&L {money_text(pnl)}",
        body=body,
        path=reverse("dashboard"),
        data={
            "day": day,
            "realized_pnl": pnl,
            "fills": fills,
            "runs": runs,
            "signals": signals,
            "llm_cost_usd": cost,
        },
    )
