"""Named reads that span several models, for the pages and the API: each reads only the columns it is for."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db.models import DecimalField, ExpressionWrapper, F, OuterRef, Prefetch, Q, Subquery
from django.db.models.expressions import RawSQL
from django.urls import reverse

from brokers.models import BrokerConnection
from lineage.models import LineageRecord
from notifications.models import Delivery, DeliveryState, Notification
from orders.models import Order
from orders.statuses import OrderStatus
from portfolio.models import PortfolioSnapshot, Position
from portfolio.services import portfolio_valuation
from signals_app.listing import newest_signal_ids_sql
from signals_app.models import TradingSignal
from trading.models import Strategy, StrategyExecution
from trading.querysets import StrategyQuerySet

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


def strategies_with_last_run(user: User) -> StrategyQuerySet:
    """The user's strategies not archived (the columns a list shows), each with its latest execution's status and
    id, in one query."""
    latest = StrategyExecution.objects.filter(strategy=OuterRef("pk")).order_by("-started_at")
    return (
        Strategy.objects.for_owner(user)
        .current()
        .select_related("symbol")
        .only(*STRATEGY_ROW_FIELDS)
        .annotate(
            last_status=Subquery(latest.values("status")[:1]),
            last_execution_id=Subquery(latest.values("execution_id")[:1]),
        )
        .order_by("name")
    )


RECENT_SIGNAL_FIELDS = ("id", "generated_at", "action", "entry_price", "confidence", "strategy__name", "symbol__symbol")


def recent_signals(user: User, strategies: list[dict[str, Any]], *, limit: int) -> list[dict[str, Any]]:
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


# --- the dashboard's portfolio card --------------------------------------------------------------------------------


def latest_snapshot(user: User) -> PortfolioSnapshot:
    """The newest stored snapshot of the user's portfolio; before the first scheduled one, the portfolio valued now
    (unsaved)."""
    snapshot = PortfolioSnapshot.objects.filter(owner=user).order_by("-taken_at").first()
    if snapshot is not None:
        return snapshot
    valuation = portfolio_valuation(owner=user)
    return PortfolioSnapshot(
        owner=user,
        cash=valuation.cash,
        positions_value=valuation.positions_value,
        total_value=valuation.total_value,
        realized_pnl=valuation.realized_pnl,
        unrealized_pnl=valuation.unrealized_pnl,
        taken_at=valuation.at,
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


def open_position_rows(user: User, *, limit: int) -> list[dict[str, Any]]:
    """The user's open positions as plain rows, each with its cost basis."""
    cost_basis = ExpressionWrapper(F("quantity") * F("average_cost"), output_field=DecimalField())
    return list(
        Position.objects.for_owner(user).open().annotate(cost_basis=cost_basis).values(*POSITION_ROW_FIELDS)[:limit]
    )


# What the dashboard's broker card shows: the name, the kind, and what `can_trade` reads.
CONNECTION_SUMMARY_FIELDS = ("name", "kind", "authenticated", "connected", "competing")


def broker_cards(user: User) -> list[BrokerConnection]:
    return list(BrokerConnection.objects.filter(owner=user).only(*CONNECTION_SUMMARY_FIELDS))


def open_order_count(user: User) -> int:
    return Order.objects.for_owner(user).open().count()


# --- Logs: runs, failures, rejections and notifications, merged into one timeline ---------------------------------


@dataclass(frozen=True)
class LogEntry:
    at: dt.datetime
    kind: str
    status: str
    strategy: Strategy | None
    text: str
    url: str
    label: str = ""


NOTIFICATION_COLUMNS = (
    "kind",
    "subject",
    "created_at",
    "order_id",
    "execution_id",
    "strategy__id",
    "strategy__name",
)
DELIVERY_COLUMNS = ("notification_id", "destination", "state", "error")


def _notification_entry(n: Notification) -> LogEntry:
    """A stored notification as a log line: what it said, and which channel failed (or is still trying) and why."""
    deliveries = list(n.deliveries.all())
    states = {d.state for d in deliveries}
    problems = [
        f"{d.destination} {'failed' if d.state == DeliveryState.FAILED else 'retrying'}: {d.error or 'no detail'}"
        for d in deliveries
        if d.state == DeliveryState.FAILED or (d.state == DeliveryState.PENDING and d.error)
    ]
    if DeliveryState.FAILED in states:
        status, label = "error", "failed" if DeliveryState.SENT not in states else "partly sent"
    elif DeliveryState.PENDING in states:
        status, label = "pending", "sending"
    elif DeliveryState.SENT in states:
        status, label = "success", "sent"
    else:
        status, label = "skipped", "no channel"
    if n.order_id:
        url = reverse("order_detail", args=[n.order_id])
    elif n.execution_id:
        url = f"{reverse('lineage')}?execution={n.execution_id}"
    else:
        url = reverse("notification_list")
    return LogEntry(
        at=n.created_at,
        kind="notification",
        status=status,
        label=label,
        strategy=n.strategy,
        text=" — ".join([f"{n.get_kind_display()}: {n.subject}", *problems]),
        url=url,
    )


def log_timeline(user: User, *, kind: str, strategy: Strategy | None, text: str, limit: int) -> list[LogEntry]:
    """The newest `limit` entries of the user's timeline, newest first: runs, failed steps, rejections (by the
    broker or by the risk check) and notifications; `kind` keeps one of them ("" is all), `strategy` one strategy,
    `text` the entries whose error, name or reason contains it."""
    executions = StrategyExecution.objects.for_owner(user).select_related("strategy")
    steps = (
        LineageRecord.objects.for_owner(user)
        .select_related("execution__strategy")
        .defer("input_data", "output_data", "metadata")
    )
    orders = Order.objects.for_owner(user).select_related("symbol", "strategy")
    notifications = (
        Notification.objects.for_owner(user)
        .select_related("strategy")
        .only(*NOTIFICATION_COLUMNS)
        .prefetch_related(Prefetch("deliveries", queryset=Delivery.objects.only(*DELIVERY_COLUMNS)))
    )
    if strategy is not None:
        executions = executions.filter(strategy=strategy)
        steps = steps.filter(execution__strategy=strategy)
        orders = orders.filter(strategy=strategy)
        notifications = notifications.filter(strategy=strategy)
    if text:
        executions = executions.filter(Q(error__icontains=text) | Q(strategy__name__icontains=text))
        steps = steps.filter(Q(error__icontains=text) | Q(step_name__icontains=text))
        orders = orders.filter(Q(status_reason__icontains=text) | Q(symbol__symbol__icontains=text))
        notifications = notifications.filter(
            Q(subject__icontains=text) | Q(body__icontains=text) | Q(deliveries__error__icontains=text)
        ).distinct()

    entries: list[LogEntry] = []
    if kind in ("", "runs"):
        entries += [
            LogEntry(
                at=e.started_at,
                kind="run",
                status=e.status,
                label=f"{e.status}: {e.get_skip_reason_display()}" if e.skip_reason else "",
                strategy=e.strategy,
                text=e.error or f"{e.trigger} run{' (dry run)' if e.dry_run else ''}",
                url=f"{reverse('lineage')}?execution={e.pk}",
            )
            for e in executions.order_by("-started_at")[:limit]
        ]
    if kind in ("", "failures"):
        entries += [
            LogEntry(
                at=r.recorded_at,
                kind="failure",
                status="error",
                strategy=r.execution.strategy,
                text=f"{r.step_name}: {r.error}",
                url=reverse("lineage_step", args=[r.execution_id, r.step_name]),
            )
            for r in steps.filter(status="error").order_by("-recorded_at")[:limit]
        ]
    if kind in ("", "rejections"):
        entries += [
            LogEntry(
                at=o.closed_at or o.created_at,
                kind="rejection",
                status=o.status,
                strategy=o.strategy,
                text=f"{o.side} {o.symbol.symbol}: {o.status_reason}",
                url=reverse("order_detail", args=[o.pk]),
            )
            for o in orders.filter(status=OrderStatus.REJECTED).order_by("-created_at")[:limit]
        ]
        refusals = (
            steps.defer(None)
            .defer("input_data", "metadata")
            .filter(step_name="risk_check", output_data__allowed=False)
            .order_by("-recorded_at")[:limit]
        )
        entries += [
            LogEntry(
                at=r.recorded_at,
                kind="rejection",
                status="skipped",
                strategy=r.execution.strategy,
                text="risk check refused: " + "; ".join((r.output_data or {}).get("refusals") or []),
                url=reverse("lineage_step", args=[r.execution_id, r.step_name]),
            )
            for r in refusals
        ]
    if kind in ("", "notifications"):
        entries += [_notification_entry(n) for n in notifications.recent()[:limit]]
    entries.sort(key=lambda entry: entry.at, reverse=True)
    return entries[:limit]
