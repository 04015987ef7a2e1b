"""Logs: runs, failures, rejections and notifications, merged into one timeline."""

from __future__ import annotations

from typing import cast

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from core.pages import render_page
from trading.models import Strategy
from trading.selectors import log_timeline
from trading.views.owned import get_strategy_for_user

LOG_KINDS = [
    ("runs", "Runs"),
    ("failures", "Failures"),
    ("rejections", "Rejections"),
    ("notifications", "Notifications"),
]
LOG_LIMIT = 100


@login_required
@require_GET
def logs(request: HttpRequest) -> HttpResponse:
    user = cast(User, request.user)  # login_required: a User
    kind = request.GET.get("kind", "")
    strategy_id = request.GET.get("strategy", "")
    text = request.GET.get("q", "").strip()
    strategy = get_strategy_for_user(user, strategy_id) if strategy_id.isdigit() else None

    context = {
        "entries": log_timeline(user, kind=kind, strategy=strategy, text=text, limit=LOG_LIMIT),
        "kinds": LOG_KINDS,
        "kind": kind,
        "strategies": Strategy.objects.for_owner(user).only("id", "name").order_by("name"),
        "strategy": strategy,
        "q": text,
    }
    return render_page(request, "trading/logs.html", context, partial="log-table")
