"""Logs: runs, failures, rejections and notifications, merged into one timeline."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_GET

from core.pages import render_page
from lineage.models import LineageRecord
from orders.models import Order
from orders.statuses import OrderStatus
from trading.models import Delivery, Notification, Strategy, StrategyExecution
from trading.views.owned import get_strategy_for_user

# --- logs: runs, failures, rejections and notifications, merged into one timeline ---------------------------------

LOG_KINDS = [
    ("runs", "Runs"),
    ("failures", "Failures"),
    ("rejections", "Rejections"),
    ("notifications", "Notifications"),
]
LOG_LIMIT = 100
NOTIFICATION_COLUMNS = [
    "kind",
    "subject",
    "created_at",
    "order_id",
    "execution_id",
    "email_result",
    "email_error",
    "webhook_result",
    "webhook_error",
    "strategy__id",
    "strategy__name",
]


def _notification_entry(n: Notification) -> dict:
    """A stored notification as a log line: what it said, and which channel failed and why."""
    results = {n.email_result, n.webhook_result}
    failures = [
        f"{channel} failed: {error or 'no detail'}"
        for channel, result, error in (
            ("email", n.email_result, n.email_error),
            ("webhook", n.webhook_result, n.webhook_error),
        )
        if result == Delivery.FAILED
    ]
    if Delivery.FAILED in results:
        status, label = "error", "failed" if Delivery.SENT not in results else "partly sent"
    elif Delivery.SENT in results:
        status, label = "success", "sent"
    else:
        status, label = "skipped", "not sent"
    if n.order_id:
        url = reverse("order_detail", args=[n.order_id])
    elif n.execution_id:
        url = f"{reverse('lineage')}?execution={n.execution_id}"
    else:
        url = f"{reverse('logs')}?kind=notifications"
    return {
        "at": n.created_at,
        "kind": "notification",
        "status": status,
        "label": label,
        "strategy": n.strategy,
        "text": " — ".join([f"{n.get_kind_display()}: {n.subject}", *failures]),
        "url": url,
    }


@login_required
@require_GET
def logs(request: HttpRequest) -> HttpResponse:
    user = request.user
    kind = request.GET.get("kind", "")
    strategy_id = request.GET.get("strategy", "")
    text = request.GET.get("q", "").strip()
    strategy = get_strategy_for_user(user, strategy_id) if strategy_id.isdigit() else None

    entries: list[dict] = []
    executions = StrategyExecution.objects.for_owner(user).live().select_related("strategy")
    steps = (
        LineageRecord.objects.for_owner(user)
        .live()
        .select_related("execution__strategy")
        .defer("input_data", "output_data", "metadata")
    )
    orders = Order.objects.for_owner(user).live().select_related("symbol", "strategy")
    if strategy is not None:
        executions = executions.filter(strategy=strategy)
        steps = steps.filter(execution__strategy=strategy)
        orders = orders.filter(strategy=strategy)
    if text:
        executions = executions.filter(Q(error__icontains=text) | Q(strategy__name__icontains=text))
        steps = steps.filter(Q(error__icontains=text) | Q(step_name__icontains=text))
        orders = orders.filter(Q(status_reason__icontains=text) | Q(symbol__symbol__icontains=text))

    if kind in ("", "runs"):
        for e in executions.order_by("-started_at")[:LOG_LIMIT]:
            entries.append(
                {
                    "at": e.started_at,
                    "kind": "run",
                    "status": e.status,
                    "label": f"{e.status}: {e.get_skip_reason_display()}" if e.skip_reason else "",
                    "strategy": e.strategy,
                    "text": e.error or f"{e.trigger} run{' (dry run)' if e.dry_run else ''}",
                    "url": f"{reverse('lineage')}?execution={e.pk}",
                }
            )
    if kind in ("", "failures"):
        for r in steps.filter(status="error").order_by("-recorded_at")[:LOG_LIMIT]:
            entries.append(
                {
                    "at": r.recorded_at,
                    "kind": "failure",
                    "status": "error",
                    "strategy": r.execution.strategy,
                    "text": f"{r.step_name}: {r.error}",
                    "url": reverse("lineage_step", args=[r.execution_id, r.step_name]),
                }
            )
    if kind in ("", "rejections"):
        for o in orders.filter(status=OrderStatus.REJECTED).order_by("-created_at")[:LOG_LIMIT]:
            entries.append(
                {
                    "at": o.closed_at or o.created_at,
                    "kind": "rejection",
                    "status": o.status,
                    "strategy": o.strategy,
                    "text": f"{o.side} {o.symbol.symbol}: {o.status_reason}",
                    "url": reverse("order_detail", args=[o.pk]),
                }
            )
        for r in (
            steps.defer(None)
            .defer("input_data", "metadata")
            .filter(step_name="risk_check", output_data__allowed=False)
            .order_by("-recorded_at")[:LOG_LIMIT]
        ):
            entries.append(
                {
                    "at": r.recorded_at,
                    "kind": "rejection",
                    "status": "skipped",
                    "strategy": r.execution.strategy,
                    "text": "risk check refused: " + "; ".join((r.output_data or {}).get("refusals") or []),
                    "url": reverse("lineage_step", args=[r.execution_id, r.step_name]),
                }
            )
    if kind in ("", "notifications"):
        notifications = (
            Notification.objects.for_owner(user).live().select_related("strategy").only(*NOTIFICATION_COLUMNS)
        )
        if strategy is not None:
            notifications = notifications.filter(strategy=strategy)
        if text:
            notifications = notifications.filter(
                Q(subject__icontains=text) | Q(body__icontains=text) | Q(webhook_error__icontains=text)
            )
        entries += [_notification_entry(n) for n in notifications.recent()[:LOG_LIMIT]]
    entries.sort(key=lambda entry: entry["at"], reverse=True)
    context = {
        "entries": entries[:LOG_LIMIT],
        "kinds": LOG_KINDS,
        "kind": kind,
        "strategies": Strategy.objects.for_owner(user).live().only("id", "name").order_by("name"),
        "strategy": strategy,
        "q": text,
    }
    return render_page(request, "trading/logs.html", context, partial="log-table")
