"""The IBKR connections: each gateway's session state and login link, and the order questions it may answer."""

from __future__ import annotations

from typing import cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from brokers.models import BrokerConnection
from core.pages import HtmxHttpRequest, render_page
from trading import forms

# --- IBKR connections ---------------------------------------------------------------------------------------------
from trading.views.owned import get_connection_for_user


def gateway_login_url(connection: BrokerConnection) -> str:
    """The gateway's own login page: its root, without the /v1/api suffix the API calls use."""
    url = (connection.gateway_url or "").rstrip("/")
    for suffix in ("/v1/api", "/v1/portal"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    return f"{url}/" if url else ""


@login_required
def ibkr(request: HttpRequest) -> HttpResponse:
    connections = list(
        BrokerConnection.objects.filter(owner=cast(User, request.user)).annotate(strategy_count=Count("strategies"))
    )
    rows = [
        {"connection": c, "form": forms.AllowedQuestionsForm(instance=c), "login_url": gateway_login_url(c)}
        for c in connections
    ]
    return render_page(request, "trading/ibkr.html", {"rows": rows})


@login_required
@require_POST
def ibkr_questions(request: HtmxHttpRequest, connection_id: int) -> HttpResponse:
    connection = get_connection_for_user(request.user, connection_id)
    form = forms.AllowedQuestionsForm(request.POST, instance=connection)
    if form.is_valid():
        # Only this one field changes; a plain row update keeps the keep-alive columns the worker writes.
        BrokerConnection.objects.filter(pk=connection.pk).update(
            allowed_question_ids=form.cleaned_data["allowed_question_ids"]
        )
        connection.allowed_question_ids = form.cleaned_data["allowed_question_ids"]
        form = forms.AllowedQuestionsForm(instance=connection)
        saved = True
    else:
        saved = False
    row = {"connection": connection, "form": form, "login_url": gateway_login_url(connection), "saved": saved}
    if request.htmx:
        return render_page(request, "trading/ibkr.html", {"row": row}, partial="questions")
    if saved:
        messages.success(request, f"Allowed questions saved for {connection.name}.")
        return redirect("ibkr")
    return render_page(request, "trading/ibkr.html", {"rows": [row]}, partial=None)
