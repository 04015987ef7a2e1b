"""Lineage: the recent runs, and every step of one run with what went in and what came out."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from core.pages import render_page, submitted_by_htmx
from core.templatetags.ui import pretty_json
from lineage.models import LineageRecord
from lineage.steps import chart_entries
from signals_app.models import LLMCall
from trading.models import ExecutionStatus, Strategy, StrategyExecution
from trading.views.owned import get_execution_for_user

RECENT_EXECUTIONS = 20
PREVIEW_CHARS = 600

# The detail template each step gets; anything else falls back to the raw input and output.
STEP_VIEWS = {
    "load_strategy": "strategy",
    "fetch_market_data": "market_data",
    "calculate_indicators": "indicators",
    "generate_charts": "charts",
    "llm_analysis": "analysis",
    "parse_signal": "signal",
    "risk_check": "risk",
    "place_order": "order",
    "execution_complete": "complete",
}


def get_step_for_user(user, execution_id, step_name: str) -> LineageRecord:
    execution = get_execution_for_user(user, execution_id)
    record = LineageRecord.objects.filter(execution=execution, step_name=step_name).first()
    if record is None:
        raise Http404("no such step in this execution")
    record.execution = execution
    return record


def _preview(data) -> str:
    text = pretty_json(data)
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS].rstrip() + "\n…"


def step_cards(execution: StrategyExecution) -> list[dict]:
    """The steps of one execution for the cards. Big JSON (a rendered prompt, an analysis) is cut for the card."""
    records = LineageRecord.objects.for_execution(execution.pk).defer("metadata")
    return [
        {"record": r, "input": _preview(r.input_data), "output": _preview(r.output_data), "summary": summarise(r)}
        for r in records
    ]


def summarise(record: LineageRecord) -> str:
    """One line that says what the step decided, for the card's header."""
    out = record.output_data or {}
    name = record.step_name
    if record.status == "error":
        return record.error.splitlines()[0][:160] if record.error else "failed"
    if name == "load_strategy":
        strategy = out.get("strategy") or {}
        return f"{strategy.get('name', '')} · {strategy.get('symbol', '')} {strategy.get('bar_size', '')}".strip(" ·")
    if name == "fetch_market_data":
        series = out.get("series") or {}
        return ", ".join(f"{size}: {s.get('count')} bars, last {s.get('last_close')}" for size, s in series.items())
    if name == "calculate_indicators":
        return f"{len(out.get('latest') or {})} indicators"
    if name == "generate_charts":
        return f"{out.get('chart_count', len(out.get('charts') or []))} chart(s)"
    if name == "llm_analysis":
        return f"{out.get('analyst', '')} {out.get('model', '')}".strip() + (
            " (cache)" if out.get("from_cache") else ""
        )
    if name == "parse_signal":
        conf = out.get("confidence")
        return f"{out.get('action', '')}" + (f" · confidence {conf}" if conf else "")
    if name == "risk_check":
        if out.get("allowed"):
            return f"allowed · quantity {out.get('quantity')}"
        return "refused: " + "; ".join(out.get("refusals") or [])[:160]
    if name == "place_order":
        return out.get("note", "")[:160]
    if name == "execution_complete":
        return out.get("status", "") + (f": {out['reason']}" if out.get("reason") else "")
    return ""


@login_required
@require_GET
def lineage(request: HttpRequest) -> HttpResponse:
    user = request.user
    execution = None
    if request.GET.get("execution"):
        execution = get_execution_for_user(user, request.GET["execution"])
    wanted = request.GET.get("strategy", "")
    if execution is not None and wanted.isdigit() and int(wanted) != execution.strategy_id:
        execution = None  # the strategy was changed without JavaScript: show that strategy's latest run
    # `all`: the panel polled from the page of all strategies' runs keeps that page's labels
    strategy = execution.strategy if execution and not request.GET.get("all") else None
    if strategy is None and wanted:
        strategy = get_object_or_404(
            Strategy.objects.for_owner(user).select_related("symbol"), pk=wanted if wanted.isdigit() else 0
        )

    recent = (
        StrategyExecution.objects.for_owner(user)
        .select_related("strategy")
        .only("started_at", "status", "strategy__name")  # what the selector shows
        .recent()
    )
    executions = list(recent.filter(strategy=strategy)[:RECENT_EXECUTIONS] if strategy else recent[:RECENT_EXECUTIONS])
    if execution is None and executions:  # the selector shows the latest run first: so does the page
        execution = get_execution_for_user(user, executions[0].pk)
    context = {
        "strategies": Strategy.objects.for_owner(user).only("id", "name").order_by("name"),
        "strategy": strategy,
        "executions": executions,
        "execution": execution,
        "cards": step_cards(execution) if execution else [],
        "polling": execution is not None and execution.status == ExecutionStatus.RUNNING,
    }
    partial = "execution-panel" if request.GET.get("panel") else None
    context["panel"] = partial is not None and submitted_by_htmx(request)
    return render_page(request, "lineage/lineage.html", context, partial=partial)


def _decimal(value) -> Decimal | None:
    try:
        return Decimal(str(value)) if value not in (None, "") else None
    except (InvalidOperation, ValueError):
        return None


def signal_view(out: dict) -> dict:
    entry, stop, target = _decimal(out.get("entry")), _decimal(out.get("stop_loss")), _decimal(out.get("target"))
    rr = None
    if entry and stop and target and entry != stop:
        risk, reward = abs(entry - stop), abs(target - entry)
        rr = {"risk": risk, "reward": reward, "ratio": reward / risk}
    return {"entry": entry, "stop": stop, "target": target, "confidence": _decimal(out.get("confidence")), "rr": rr}


@login_required
@require_GET
def lineage_step(request: HttpRequest, execution_id, step_name: str) -> HttpResponse:
    record = get_step_for_user(request.user, execution_id, step_name)
    execution = record.execution
    out, inp = record.output_data or {}, record.input_data or {}
    context = {
        "record": record,
        "execution": execution,
        "strategy": execution.strategy,
        "input": inp,
        "output": out,
        "view": STEP_VIEWS.get(step_name, "generic"),
        "steps": list(
            LineageRecord.objects.filter(execution=execution).order_by("step_number").values_list("step_name", "status")
        ),
    }
    if step_name == "generate_charts":
        context["charts"] = chart_entries(out)
    elif step_name == "calculate_indicators":
        counts = out.get("count") or {}
        context["indicator_rows"] = [
            {"name": name, "values": values, "count": counts.get(name)}
            for name, values in (out.get("latest") or {}).items()
        ]
    elif step_name == "parse_signal":
        context["signal"] = signal_view(out)
    elif step_name == "llm_analysis" and out.get("llm_call_id"):
        context["llm_call"] = LLMCall.objects.filter(pk=out["llm_call_id"], execution=execution).first()
    return render_page(request, "lineage/step_detail.html", context)
