"""The trader's pages for strategies, indicators, the IBKR connections, the logs and the user's settings.

Views are thin: they fetch through the `get_..._for_user` helpers (another user's id is a 404), validate with a
form, and write through `trading.services`.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Count, DecimalField, ExpressionWrapper, F, OuterRef, Prefetch, Q, Subquery
from django.db.models.expressions import RawSQL
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from rest_framework.authtoken.models import Token

from lineage.models import LineageRecord
from market.indicators import describe_registry
from market.models import Symbol
from market.symbol_search import symbols_matching
from orders.models import Order, OrderStatus
from portfolio.models import PortfolioSnapshot, Position
from portfolio.services import portfolio_valuation
from signals_app.listing import newest_signal_ids_sql
from signals_app.models import TradingSignal
from trading import forms, services
from trading.middleware import profile_for_user, remember_time_zone
from trading.models import (
    BrokerConnection,
    Delivery,
    ExecutionStatus,
    IndicatorConfig,
    Notification,
    Strategy,
    StrategyExecution,
    StrategyIndicator,
)
from trading.pages import paginate, redirect_to, render_page

DRAFT_SESSION_KEY = "strategy_draft"


# --- ownership ----------------------------------------------------------------------------------------------------


def get_strategy_for_user(user, strategy_id) -> Strategy:
    return get_object_or_404(Strategy.objects.for_owner(user).select_related("symbol"), pk=strategy_id)


def get_execution_for_user(user, execution_id) -> StrategyExecution:
    return get_object_or_404(
        StrategyExecution.objects.for_owner(user).select_related("strategy__symbol"), pk=execution_id
    )


def get_indicator_for_user(user, indicator_id) -> IndicatorConfig:
    return get_object_or_404(IndicatorConfig.objects.filter(owner=user), pk=indicator_id)


def get_connection_for_user(user, connection_id) -> BrokerConnection:
    return get_object_or_404(BrokerConnection.objects.filter(owner=user), pk=connection_id)


def live_orders(user):
    """The user's orders without those a replay placed (its strategy is a replay's copy): replays never trade."""
    return Order.objects.for_owner(user).filter(Q(strategy__isnull=True) | Q(strategy__replay_of__isnull=True))


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


def strategies_with_last_run(user):
    """The user's strategies (the columns a list shows), each with its latest execution's status and id, in one
    query."""
    latest = StrategyExecution.objects.filter(strategy=OuterRef("pk")).order_by("-started_at")
    return (
        Strategy.objects.for_owner(user)
        .live()
        .select_related("symbol")
        .only(*STRATEGY_ROW_FIELDS)
        .annotate(
            last_status=Subquery(latest.values("status")[:1]),
            last_execution_id=Subquery(latest.values("execution_id")[:1]),
        )
        .order_by("name")
    )


# --- dashboard ----------------------------------------------------------------------------------------------------


RECENT_SIGNAL_FIELDS = ("id", "generated_at", "action", "entry_price", "confidence", "strategy__name", "symbol__symbol")


def recent_signals(user, strategies: list[dict], *, limit: int) -> list[dict]:
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


POSITION_ROW_FIELDS = (
    "quantity",
    "average_cost",
    "stop_loss",
    "take_profit",
    "symbol__symbol",
    "strategy__name",
    "cost_basis",
)

# What the dashboard's broker card shows: the name, the kind, and what `can_trade` reads.
CONNECTION_SUMMARY_FIELDS = ("name", "kind", "authenticated", "connected", "competing")


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    user = request.user
    snapshot = PortfolioSnapshot.objects.filter(owner=user).order_by("-taken_at").first()
    if snapshot is None:  # before the first scheduled snapshot: value the portfolio now instead
        valuation = portfolio_valuation(owner=user)
        snapshot = PortfolioSnapshot(
            owner=user,
            cash=valuation.cash,
            positions_value=valuation.positions_value,
            total_value=valuation.total_value,
            realized_pnl=valuation.realized_pnl,
            unrealized_pnl=valuation.unrealized_pnl,
            taken_at=valuation.at,
        )
    # Plain value rows for the tables (model instances and their related ones cost more to build than the queries).
    strategies = list(
        strategies_with_last_run(user).values("id", "last_status", "last_execution_id", *STRATEGY_ROW_FIELDS)
    )
    context = {
        "snapshot": snapshot,
        "positions": list(
            Position.objects.for_owner(user)
            .live()
            .open()
            .annotate(cost_basis=ExpressionWrapper(F("quantity") * F("average_cost"), output_field=DecimalField()))
            .values(*POSITION_ROW_FIELDS)[:20]
        ),
        "strategies": strategies,
        "signals": recent_signals(user, strategies, limit=8),
        "connections": list(
            BrokerConnection.objects.filter(owner=user, replay_of__isnull=True).only(*CONNECTION_SUMMARY_FIELDS)
        ),
        "open_orders": live_orders(user).open().count(),
        "global_kill_switch": settings.TRADING_KILL_SWITCH,
        "killed": sum(1 for s in strategies if s["kill_switch"]),
        "running": any(s["last_status"] == ExecutionStatus.RUNNING for s in strategies),
    }
    return render_page(request, "trading/dashboard.html", context, partial="strategies")


@login_required
@require_POST
def kill_switch(request: HttpRequest) -> HttpResponse:
    """Engage or release the kill switch on every one of the user's strategies (the global one is an env var)."""
    engage = request.POST.get("engage") == "on"
    changed = 0
    for strategy in Strategy.objects.for_owner(request.user).filter(kill_switch=not engage):
        services.strategy_update(strategy=strategy, kill_switch=engage)
        changed += 1
    verb = "engaged" if engage else "released"
    messages.success(request, f"Kill switch {verb} on {changed} strateg{'y' if changed == 1 else 'ies'}.")
    return redirect("dashboard")


# --- IBKR connections ---------------------------------------------------------------------------------------------


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
        BrokerConnection.objects.filter(owner=request.user, replay_of__isnull=True).annotate(
            strategy_count=Count("strategies")
        )
    )
    rows = [
        {"connection": c, "form": forms.AllowedQuestionsForm(instance=c), "login_url": gateway_login_url(c)}
        for c in connections
    ]
    return render_page(request, "trading/ibkr.html", {"rows": rows})


@login_required
@require_POST
def ibkr_questions(request: HttpRequest, connection_id: int) -> HttpResponse:
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


# --- indicators ---------------------------------------------------------------------------------------------------


@login_required
def indicator_list(request: HttpRequest) -> HttpResponse:
    form = forms.IndicatorConfigForm(request.POST or None, owner=request.user)
    if request.method == "POST" and form.is_valid():
        config = form.save(commit=False)
        config.owner = request.user
        config.save()
        messages.success(request, f"Saved {config.name}.")
        if request.htmx:
            form = forms.IndicatorConfigForm(owner=request.user)
        else:
            return redirect("indicator_list")
    configs = IndicatorConfig.objects.filter(owner=request.user).annotate(strategy_count=Count("strategy_links"))
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


# --- strategies ---------------------------------------------------------------------------------------------------


@login_required
@require_GET
def strategy_list(request: HttpRequest) -> HttpResponse:
    return render_page(request, "trading/strategy_list.html", {"strategies": strategies_with_last_run(request.user)})


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
    services.strategy_resume(strategy=strategy)
    messages.success(request, f"Resumed {strategy.name}.")
    return redirect(_next_or(request, reverse("strategy_detail", args=[strategy.pk])))


@login_required
@require_POST
def strategy_delete(request: HttpRequest, strategy_id: int) -> HttpResponse:
    strategy = get_strategy_for_user(request.user, strategy_id)
    name = strategy.name
    services.strategy_delete(strategy=strategy)
    messages.success(request, f"Deleted {name}.")
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
    from django.http import QueryDict

    saved = _draft(request).get(step)
    if saved is None:
        return None
    data = QueryDict(mutable=True)
    for key, values in saved.items():
        data.setlist(key, values)
    return data


@login_required
def strategy_create(request: HttpRequest, step: str = "symbol") -> HttpResponse:
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


def _redirect_step(request: HttpRequest, step: str) -> HttpResponse:
    url = reverse("strategy_create_step", args=[step])
    if request.htmx:
        # Render the next step in place and keep the address bar honest.
        response = strategy_create(_as_get(request), step)
        response["HX-Push-Url"] = url
        return response
    return redirect(url)


def _as_get(request: HttpRequest) -> HttpRequest:
    request.method = "GET"
    request.POST = request.POST.copy()
    request.POST.clear()
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
    orders = live_orders(user).select_related("symbol", "strategy")
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


# --- settings: time zone and API tokens ---------------------------------------------------------------------------


@login_required
def settings_view(request: HttpRequest) -> HttpResponse:
    profile = profile_for_user(request.user)
    tz_form = forms.TimeZoneForm(
        request.POST if request.POST.get("action") == "time_zone" else None, initial={"time_zone": profile.time_zone}
    )
    if tz_form.is_bound and tz_form.is_valid():
        profile.time_zone = tz_form.cleaned_data["time_zone"]
        profile.save(update_fields=["time_zone"])
        remember_time_zone(request, profile.time_zone)
        messages.success(request, f"Times are now shown in {profile.time_zone}.")
        return redirect("settings")
    new_key = None
    if request.POST.get("action") == "token_create":
        Token.objects.filter(user=request.user).delete()
        new_key = Token.objects.create(user=request.user).key
    elif request.POST.get("action") == "token_revoke":
        Token.objects.filter(user=request.user).delete()
        messages.success(request, "API token revoked.")
        return redirect("settings")
    token = Token.objects.filter(user=request.user).first()
    context = {"tz_form": tz_form, "token": token, "new_key": new_key, "profile": profile}
    return render_page(request, "trading/settings.html", context, partial="tokens")
