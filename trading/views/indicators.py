"""Saved indicators: list, edit, delete, and each type's defaults."""

from __future__ import annotations

from typing import cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

from core.pages import HtmxHttpRequest, render_page
from market.indicators import describe_registry
from market.models import IndicatorConfig
from trading import forms

# --- indicators ---------------------------------------------------------------------------------------------------
from trading.views.owned import get_indicator_for_user


@login_required
def indicator_list(request: HtmxHttpRequest) -> HttpResponse:
    user = cast(User, request.user)  # login_required: a User
    form = forms.IndicatorConfigForm(request.POST or None, owner=user)
    if request.method == "POST" and form.is_valid():
        config = form.save(commit=False)
        config.owner = user
        config.save()
        messages.success(request, f"Saved {config.name}.")
        if request.htmx:
            form = forms.IndicatorConfigForm(owner=user)
        else:
            return redirect("indicator_list")
    configs = IndicatorConfig.objects.filter(owner=user).annotate(strategy_count=Count("strategy_links"))
    context = {"form": form, "configs": configs, "registry": describe_registry()}
    return render_page(request, "trading/indicators.html", context, partial="indicator-panel")


@login_required
def indicator_edit(request: HttpRequest, indicator_id: int) -> HttpResponse:
    config = get_indicator_for_user(request.user, indicator_id)
    form = forms.IndicatorConfigForm(request.POST or None, instance=config, owner=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Saved {config.name}.")
        return redirect("indicator_list")
    return render_page(request, "trading/indicator_edit.html", {"form": form, "config": config})


@login_required
@require_POST
def indicator_delete(request: HttpRequest, indicator_id: int) -> HttpResponse:
    config = get_indicator_for_user(request.user, indicator_id)
    if config.strategy_links.exists():
        messages.error(request, f"{config.name} is used by a strategy; remove it there first.")
    else:
        config.delete()
        messages.success(request, f"Deleted {config.name}.")
    return redirect("indicator_list")


@login_required
@require_GET
def indicator_defaults(request: HttpRequest) -> HttpResponse:
    """The parameters input filled with the chosen indicator's defaults (HTMX, on changing the type)."""
    registry = describe_registry()
    spec = registry.get(request.GET.get("indicator_type", "").upper())
    if spec is None:
        raise Http404("unknown indicator")
    defaults = {name: p["default"] for name, p in spec["params"].items()}
    return render_page(
        request,
        "trading/indicators.html",
        {"defaults": forms.format_parameters(defaults), "spec": spec},
        partial="parameters-input",
    )
