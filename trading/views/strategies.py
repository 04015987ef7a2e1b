"""Strategies: list, detail, edit, pause and resume, delete, run now, and the create flow (symbol, indicators,
prompt, schedule, risk). Writes go through `trading.services`."""

from __future__ import annotations

from typing import cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from core.pages import HtmxHttpRequest, paginate, redirect_to, render_page
from market.models import Symbol
from market.symbol_search import symbols_matching
from trading import forms, services
from trading.models import ExecutionStatus, Strategy, StrategyExecution, StrategyIndicator
from trading.selectors import strategies_with_last_run
from trading.views.owned import get_strategy_for_user

DRAFT_SESSION_KEY = "strategy_draft"


# --- strategies ---------------------------------------------------------------------------------------------------


@login_required
@require_GET
def strategy_list(request: HttpRequest) -> HttpResponse:
    user = cast(User, request.user)  # login_required: a User
    archived = Strategy.objects.for_owner(user).archived().select_related("symbol").order_by("-archived_at")
    return render_page(
        request, "trading/strategy_list.html", {"strategies": strategies_with_last_run(user), "archived": archived}
    )


@login_required
@require_GET
def strategy_detail(request: HttpRequest, strategy_id: int) -> HttpResponse:
    strategy = get_object_or_404(
        Strategy.objects.for_owner(request.user)
        .select_related("symbol", "prompt_template", "pinned_prompt_version", "broker_connection")
        .prefetch_related(
            Prefetch("strategy_indicators", queryset=StrategyIndicator.objects.select_related("indicator"))
        ),
        pk=strategy_id,
    )
    executions = paginate(request, StrategyExecution.objects.filter(strategy=strategy).recent(), per_page=20)
    context = {
        "strategy": strategy,
        "executions": executions,
        "polling": any(e.status == ExecutionStatus.RUNNING for e in executions),
    }
    return render_page(request, "trading/strategy_detail.html", context, partial="executions")


@login_required
def strategy_edit(request: HttpRequest, strategy_id: int) -> HttpResponse:
    strategy = get_strategy_for_user(request.user, strategy_id)
    form = forms.StrategyEditForm(request.POST or None, instance=strategy, owner=request.user)
    if request.method == "POST" and form.is_valid():
        changes = {name: form.cleaned_data[name] for name in form.Meta.fields}
        indicators = list(form.cleaned_data["indicators"])
        fresh = get_strategy_for_user(request.user, strategy_id)  # the form's instance holds unsaved edits
        try:
            services.strategy_update(strategy=fresh, indicators=indicators, **changes)
        except ValidationError as error:
            forms.apply_service_error(form, error)
        else:
            messages.success(request, f"Saved {fresh.name}.")
            return redirect_to(request, "strategy_detail", strategy_id=strategy.pk)
    return render_page(request, "trading/strategy_edit.html", {"form": form, "strategy": strategy}, partial="form")


@login_required
@require_POST
def strategy_pause(request: HttpRequest, strategy_id: int) -> HttpResponse:
    strategy = get_strategy_for_user(request.user, strategy_id)
    services.strategy_pause(strategy=strategy)
    messages.success(request, f"Paused {strategy.name}: no scheduled runs until you resume it.")
    return redirect(_next_or(request, reverse("strategy_detail", args=[strategy.pk])))


@login_required
@require_POST
def strategy_resume(request: HttpRequest, strategy_id: int) -> HttpResponse:
    strategy = get_strategy_for_user(request.user, strategy_id)
    try:
        services.strategy_resume(strategy=strategy)
    except services.StrategyPaused as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Resumed {strategy.name}.")
    return redirect(_next_or(request, reverse("strategy_detail", args=[strategy.pk])))


@login_required
@require_POST
def strategy_delete(request: HttpRequest, strategy_id: int) -> HttpResponse:
    strategy = get_strategy_for_user(request.user, strategy_id)
    in_use = services.strategy_in_use(strategy=strategy)
    services.strategy_archive(strategy=strategy, anyway=True)
    kept = f" It still has {in_use}: the stop/target watch keeps watching until it is closed." if in_use else ""
    messages.success(request, f"Archived {strategy.name}: it runs nothing more, and its history is kept.{kept}")
    return redirect("strategy_list")


@login_required
@require_POST
def strategy_run(request: HttpRequest, strategy_id: int) -> HttpResponse:
    strategy = get_strategy_for_user(request.user, strategy_id)
    try:
        execution = services.strategy_run_now(strategy=strategy)
    except services.StrategyPaused as error:
        messages.error(request, str(error))
        return redirect("strategy_detail", strategy_id=strategy.pk)
    except services.AlreadyRunning:
        messages.warning(request, f"{strategy.name} is already running.")
        return redirect("strategy_detail", strategy_id=strategy.pk)
    messages.success(request, f"Started a run of {strategy.name}.")
    return redirect(f"{reverse('lineage')}?execution={execution.pk}")


def _next_or(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next", "")
    return target if target.startswith("/") and not target.startswith("//") else default


# --- the create flow: symbol → indicators → prompt → schedule → risk -----------------------------------------------
# Each step's raw POST is kept in the session; the last step re-validates every step and calls the service once.

STEP_NAMES = [name for name, _, _ in forms.CREATE_STEPS]


def _draft(request: HttpRequest) -> dict:
    return request.session.get(DRAFT_SESSION_KEY, {})


def _step_form(request: HttpRequest, step: str, data=None):
    _, _, form_class = next(s for s in forms.CREATE_STEPS if s[0] == step)
    return form_class(data, owner=request.user, prefix=step)


def _saved_step_data(request: HttpRequest, step: str):
    saved = _draft(request).get(step)
    if saved is None:
        return None
    data = QueryDict(mutable=True)
    for key, values in saved.items():
        data.setlist(key, values)
    return data


@login_required
def strategy_create(request: HtmxHttpRequest, step: str = "symbol") -> HttpResponse:
    if step not in STEP_NAMES:
        raise Http404("no such step")
    index = STEP_NAMES.index(step)
    first_missing = next((name for name in STEP_NAMES[:index] if name not in _draft(request)), None)
    if first_missing:
        return redirect("strategy_create_step", step=first_missing)

    if request.method == "POST":
        form = _step_form(request, step, request.POST)
        if form.is_valid():
            draft = _draft(request)
            draft[step] = {key: request.POST.getlist(key) for key in request.POST if key.startswith(f"{step}-")}
            request.session[DRAFT_SESSION_KEY] = draft
            if index + 1 < len(STEP_NAMES):
                return _redirect_step(request, STEP_NAMES[index + 1])
            strategy = _create_from_draft(request, form)
            if strategy is not None:
                request.session.pop(DRAFT_SESSION_KEY, None)
                messages.success(request, f"Created {strategy.name}. It runs on its schedule, or now with Run now.")
                return redirect_to(request, "strategy_detail", strategy_id=strategy.pk)
    else:
        if request.GET.get("restart"):
            request.session.pop(DRAFT_SESSION_KEY, None)
        form = _step_form(request, step, _saved_step_data(request, step))
        if not form.is_bound and step == "symbol" and request.GET.get("symbol"):
            form.initial["symbol"] = request.GET["symbol"]
    context = {
        "form": form,
        "step": step,
        "steps": [
            {"name": name, "label": label, "done": name in _draft(request) and name != step, "current": name == step}
            for name, label, _ in forms.CREATE_STEPS
        ],
        "previous": STEP_NAMES[index - 1] if index else None,
        "last": index == len(STEP_NAMES) - 1,
        "summary": _draft_summary(request) if step == "risk" else None,
        "chosen_symbol": _chosen_symbol(form),
        "symbol_results": symbols_matching(request.GET.get("q", "")) if step == "symbol" else [],
    }
    return render_page(request, "trading/strategy_create.html", context, partial="wizard")


def _redirect_step(request: HtmxHttpRequest, step: str) -> HttpResponse:
    url = reverse("strategy_create_step", args=[step])
    if request.htmx:
        # Render the next step in place and keep the address bar honest.
        response = strategy_create(_as_get(request), step)
        response["HX-Push-Url"] = url
        return response
    return redirect(url)


def _as_get(request: HtmxHttpRequest) -> HtmxHttpRequest:
    request.method = "GET"
    request.POST = QueryDict()  # empty: a GET has no form data
    return request


def _chosen_symbol(form) -> Symbol | None:
    if "symbol" not in form.fields:
        return None
    value = form["symbol"].value()
    if not value:
        return None
    try:
        return Symbol.objects.filter(pk=int(value)).first()
    except (TypeError, ValueError):
        return None


def _validated_draft(request: HttpRequest) -> tuple[dict, dict]:
    """Every step re-validated from the session: (cleaned fields, invalid forms by step)."""
    cleaned: dict = {}
    invalid: dict = {}
    for name in STEP_NAMES:
        data = _saved_step_data(request, name)
        form = _step_form(request, name, data)
        if data is None or not form.is_valid():
            invalid[name] = form
            continue
        cleaned.update(form.cleaned_data)
    return cleaned, invalid


def _draft_summary(request: HttpRequest) -> dict:
    cleaned, _ = _validated_draft(request)
    return cleaned


def _create_from_draft(request: HttpRequest, last_form) -> Strategy | None:
    cleaned, invalid = _validated_draft(request)
    if invalid:
        step = next(iter(invalid))
        last_form.add_error(None, f"The {step} step needs another look: {invalid[step].errors.as_text()}")
        return None
    indicators = list(cleaned.pop("indicators", []))
    name, symbol = cleaned.pop("name"), cleaned.pop("symbol")
    try:
        return services.strategy_create(owner=request.user, name=name, symbol=symbol, indicators=indicators, **cleaned)
    except ValidationError as error:
        forms.apply_service_error(last_form, error)
        if hasattr(error, "error_dict"):
            fields = ", ".join(error.error_dict)
            last_form.add_error(None, f"Check these fields in the earlier steps: {fields}.")
        return None
