"""Prompts (templates, versions, diffs, previews) and signals (a filterable list and a detail page)."""

from __future__ import annotations

import datetime as dt
import difflib

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Count, Max, Q
from django.db.models.expressions import RawSQL
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.views.decorators.http import require_GET

from lineage.models import LineageRecord
from market.views import CHART_STEP, chart_entries
from orders.models import Order
from signals_app.forms import PromptTemplateForm, PromptVersionForm, SignalFilterForm
from signals_app.listing import newest_signal_ids_sql
from signals_app.models import LLMCall, PromptTemplate, SignalAction, SignalOutcome, TradingSignal
from signals_app.prompts import CONTEXT_VARIABLES, PromptRenderError, prompt_version_create, render_prompt
from trading.models import Strategy
from trading.pages import PAGE_SIZE, Window, page_number, redirect_to, render_page

# --- ownership ----------------------------------------------------------------------------------------------------


def get_prompt_for_user(user, template_id) -> PromptTemplate:
    """A template the user may read: their own or a global one."""
    return get_object_or_404(PromptTemplate.objects.visible_to(user), pk=template_id)


def get_editable_prompt_for_user(user, template_id) -> PromptTemplate:
    """Only the owner edits a template; only staff edit the global ones. Anything else is a 404."""
    template = get_prompt_for_user(user, template_id)
    if template.owner_id != user.pk and not (template.is_global and user.is_staff):
        raise Http404("not yours to edit")
    return template


def get_signal_for_user(user, signal_id) -> TradingSignal:
    return get_object_or_404(
        TradingSignal.objects.for_owner(user).select_related(
            "strategy", "symbol", "execution", "prompt_version__template"
        ),
        pk=signal_id,
    )


# --- prompts ------------------------------------------------------------------------------------------------------


@login_required
def prompt_list(request: HttpRequest) -> HttpResponse:
    form = PromptTemplateForm(request.POST or None, owner=request.user)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            template = form.save(commit=False)
            template.owner = request.user
            template.save()
            prompt_version_create(
                template=template,
                body=form.cleaned_data["body"],
                created_by=request.user,
                note=form.cleaned_data["note"],
            )
        messages.success(request, f"Saved {template.name} v1.")
        return redirect_to(request, "prompt_detail", template_id=template.pk)
    templates = (
        PromptTemplate.objects.visible_to(request.user)
        .filter(strategy__isnull=True)
        .annotate(version_count=Count("versions"), latest_number=Max("versions__number"))
        .order_by("owner_id", "name")
    )
    context = {"templates": templates, "form": form, "variables": CONTEXT_VARIABLES}
    return render_page(request, "signals_app/prompts.html", context, partial="new-prompt")


@login_required
def prompt_detail(request: HttpRequest, template_id: int) -> HttpResponse:
    template = get_prompt_for_user(request.user, template_id)
    editable = template.owner_id == request.user.pk or (template.is_global and request.user.is_staff)
    versions = list(template.versions.select_related("created_by").order_by("-number"))
    latest = versions[0] if versions else None
    form = PromptVersionForm(request.POST or None, initial={"body": latest.body if latest else ""})
    if request.method == "POST":
        template = get_editable_prompt_for_user(request.user, template_id)
        if form.is_valid():
            version = prompt_version_create(
                template=template,
                body=form.cleaned_data["body"],
                created_by=request.user,
                note=form.cleaned_data["note"],
            )
            if latest is not None and version.pk == latest.pk:
                messages.info(request, "The text is unchanged: no new version.")
            else:
                messages.success(request, f"Saved version {version.number}.")
            return redirect_to(request, "prompt_detail", template_id=template.pk)
    context = {
        "template": template,
        "versions": versions,
        "latest": latest,
        "form": form,
        "editable": editable,
        "variables": CONTEXT_VARIABLES,
        "strategies": Strategy.objects.for_owner(request.user).live().only("id", "name").order_by("name"),
    }
    return render_page(request, "signals_app/prompt_detail.html", context, partial="version-form")


def diff_lines(old: str, new: str) -> list[tuple[str, str]]:
    """A unified diff as (kind, text) rows: kind is add, del, hunk or ctx."""
    rows = []
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=3):
        if line.startswith(("---", "+++")):
            continue
        kind = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "ctx")
        rows.append((kind, line))
    return rows


@login_required
@require_GET
def prompt_diff(request: HttpRequest, template_id: int) -> HttpResponse:
    template = get_prompt_for_user(request.user, template_id)
    versions = {v.number: v for v in template.versions.all()}
    try:
        a, b = int(request.GET.get("a", 0)), int(request.GET.get("b", 0))
    except ValueError:
        raise Http404("versions are numbers") from None
    if not versions:
        raise Http404("no versions")
    newest = max(versions)
    b = b or newest
    a = a or max(b - 1, 1)
    if a not in versions or b not in versions:
        raise Http404("no such version")
    context = {
        "template": template,
        "a": versions[a],
        "b": versions[b],
        "rows": diff_lines(versions[a].body, versions[b].body),
        "numbers": sorted(versions, reverse=True),
    }
    return render_page(request, "signals_app/prompt_diff.html", context, partial="diff")


@login_required
@require_GET
def prompt_preview(request: HttpRequest, template_id: int) -> HttpResponse:
    """A version rendered against one of the user's strategies, with that strategy's latest data."""
    template = get_prompt_for_user(request.user, template_id)
    version = (
        get_object_or_404(template.versions, number=request.GET.get("version") or 0)
        if request.GET.get("version")
        else template.versions.order_by("-number").first()
    )
    strategy = get_object_or_404(Strategy.objects.for_owner(request.user), pk=request.GET.get("strategy") or 0)
    text, error = "", ""
    if version is None:
        error = "This template has no version yet."
    else:
        try:
            text = render_prompt(version, _preview_context(strategy))
        except PromptRenderError as exc:
            error = str(exc)
        except Exception as exc:  # no bars yet, a missing chart: say so on the page instead of a 500
            error = f"Could not build this strategy's data: {exc}"
    context = {"template": template, "version": version, "strategy": strategy, "text": text, "error": error}
    return render_page(request, "signals_app/prompt_preview.html", context, partial="preview")


def _preview_context(strategy: Strategy) -> dict:
    from signals_app.steps import preview_context

    return preview_context(strategy)


# --- signals ------------------------------------------------------------------------------------------------------

# What a row of the signals list shows; loading only these keeps fifty rows cheap to build.
SIGNAL_ROW_FIELDS = (
    "generated_at",
    "action",
    "entry_price",
    "stop_loss",
    "take_profit",
    "confidence",
    "analyst",
    "model",
    "outcome",
    "r_multiple",
    "strategy__name",
    "symbol__symbol",
)


def filtered_signals(user, params) -> tuple[SignalFilterForm, object, list, list[int]]:
    """The filter form, the filtered signals (not yet scoped to strategies), and the user's live strategies."""
    strategies = list(Strategy.objects.for_owner(user).live().only("id", "name").order_by("name"))
    form = SignalFilterForm(params or None, strategies=Strategy.objects.for_owner(user).live())
    signals = TradingSignal.objects.all()
    scope = [strategy.pk for strategy in strategies]
    if form.is_valid():
        data = form.cleaned_data
        if data.get("strategy"):
            scope = [data["strategy"].pk]
        if data.get("action"):
            signals = signals.filter(action=data["action"])
        if data.get("outcome"):
            signals = signals.filter(outcome=data["outcome"])
        zone = timezone.get_current_timezone()
        if data.get("since"):
            signals = signals.filter(generated_at__gte=dt.datetime.combine(data["since"], dt.time.min, tzinfo=zone))
        if data.get("until"):
            end = dt.datetime.combine(data["until"] + dt.timedelta(days=1), dt.time.min, tzinfo=zone)
            signals = signals.filter(generated_at__lt=end)
    query = (params or {}).get("q", "").strip() if params else ""
    if query:
        signals = signals.filter(Q(symbol__symbol__iexact=query) | Q(reasoning__icontains=query))
    return form, signals, strategies, scope


def signal_window(request: HttpRequest, signals, scope: list[int]) -> Window:
    """One page of the list, newest first, in one query: the per-strategy index merge picks the page's ids (one
    more than a page, to know whether there is a next one) as an IN subquery, and only the columns the table shows
    are read, as plain values (fifty model instances and their related ones cost more to build than the query)."""
    number = page_number(request)
    if not scope:
        return Window([], number, False)
    sql, params = newest_signal_ids_sql(signals, scope, offset=(number - 1) * PAGE_SIZE, limit=PAGE_SIZE + 1)
    rows = list(
        TradingSignal.objects.filter(pk__in=RawSQL(sql, params))
        .order_by("-generated_at", "-id")
        .values("id", *SIGNAL_ROW_FIELDS)
    )
    return Window(rows[:PAGE_SIZE], number, len(rows) > PAGE_SIZE)


@login_required
@require_GET
def signal_list(request: HttpRequest) -> HttpResponse:
    form, signals, strategies, scope = filtered_signals(request.user, request.GET)
    page = signal_window(request, signals, scope)
    context = {
        "form": form,
        "page": page,
        "strategies": strategies,
        "actions": SignalAction.choices,
        "outcomes": SignalOutcome.choices,
    }
    return render_page(request, "signals_app/signal_list.html", context, partial="signal-table")


def risk_reward(signal: TradingSignal) -> dict | None:
    if not (signal.entry_price and signal.stop_loss and signal.take_profit):
        return None
    risk = abs(signal.entry_price - signal.stop_loss)
    reward = abs(signal.take_profit - signal.entry_price)
    return {"risk": risk, "reward": reward, "ratio": (reward / risk) if risk else None}


@login_required
@require_GET
def signal_detail(request: HttpRequest, signal_id: int) -> HttpResponse:
    signal = get_signal_for_user(request.user, signal_id)
    charts, calls, analysis = [], [], None
    if signal.execution_id:
        steps = {
            r.step_name: r
            for r in LineageRecord.objects.filter(
                execution_id=signal.execution_id, step_name__in=[CHART_STEP, "llm_analysis"]
            )
        }
        if CHART_STEP in steps:
            charts = chart_entries(steps[CHART_STEP].output_data)
        analysis = steps.get("llm_analysis")
        calls = list(LLMCall.objects.filter(execution_id=signal.execution_id).order_by("created_at"))
    context = {
        "signal": signal,
        "charts": charts,
        "analysis": analysis,
        "calls": calls,
        "rr": risk_reward(signal),
        "orders": Order.objects.filter(signal=signal).select_related("symbol").order_by("created_at"),
    }
    return render_page(request, "signals_app/signal_detail.html", context)
