"""The /replays/ pages: start a replay (a Celery task with a progress bar), read its report, list, compare two."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.pages import redirect_to, render_page
from replays import services, tasks
from replays.forms import ReplayForm
from replays.models import Replay

COMPARED = [
    ("Total return", "total_return", "percent"),
    ("CAGR", "cagr", "percent"),
    ("Max drawdown", "max_drawdown", "drawdown"),
    ("Sharpe", "sharpe", "number"),
    ("Trades", "trades", "count"),
    ("Win rate", "win_rate", "percent"),
    ("Average R", "average_r", "number"),
    ("Exposure", "exposure", "percent"),
    ("Fees", "fees", "usd"),
    ("LLM cost", "llm_cost", "usd"),
    ("Return net of LLM cost", "return_net_of_llm_cost", "percent"),
    ("End equity", "end_equity", "usd"),
]


def get_replay_for_user(user, replay_id) -> Replay:
    return get_object_or_404(
        Replay.objects.for_owner(user).select_related("strategy", "symbol", "prompt_version"), pk=replay_id
    )


def _rows(replay: Replay) -> list[dict]:
    """The figures table: one row per figure, one cell per column (replay, buy and hold, rules)."""
    columns = (replay.report or {}).get("columns") or {}
    return [
        {
            "label": label,
            "kind": kind,
            "cells": [columns[name].get(key) for name in ("replay", "buy_and_hold", "rules") if name in columns],
        }  # fmt: skip
        for label, key, kind in COMPARED
    ]


@login_required
@require_http_methods(["GET", "POST"])
def replay_list(request: HttpRequest) -> HttpResponse:
    form = ReplayForm(request.POST or None, owner=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            replay = services.replay_create(
                owner=request.user,
                strategy=data["strategy"],
                start=data["start"],
                end=data["end"],
                analyst=data["analyst"] or None,
                model=data["model"] or None,
                prompt_version=data["prompt_version"],
                budget_usd=data["budget_usd"],
                llm_cache=data["llm_cache"],
                anonymise=data["anonymise"],
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            transaction.on_commit(lambda: tasks.replay_run.delay(replay.pk))
            messages.success(request, f"Replay {replay.pk} started: {replay.steps_total} steps.")
            return redirect_to(request, "replay_detail", replay.pk)
    replays = Replay.objects.for_owner(request.user).primary().select_related("strategy", "symbol")[:100]
    return render_page(request, "replays/replay_list.html", {"form": form, "replays": replays}, partial="replay-table")


@login_required
@require_GET
def replay_detail(request: HttpRequest, replay_id: int) -> HttpResponse:
    replay = get_replay_for_user(request.user, replay_id)
    context = {"replay": replay, "rows": _rows(replay), "baseline": replay.baselines.first()}
    return render_page(request, "replays/replay_detail.html", context, partial="replay-progress")


@login_required
@require_GET
def replay_plot(request: HttpRequest, replay_id: int) -> FileResponse:
    replay = get_replay_for_user(request.user, replay_id)
    key = (replay.report or {}).get("plot_key")
    if not key or not default_storage.exists(key):
        raise Http404("no plot yet")
    return FileResponse(default_storage.open(key, "rb"), content_type="image/png")


@login_required
@require_GET
def replay_compare(request: HttpRequest) -> HttpResponse:
    ids = request.GET.getlist("id")[:2]
    if len(ids) != 2 or not all(i.isdigit() for i in ids):
        raise Http404("pick two replays to compare")
    left, right = (get_replay_for_user(request.user, int(i)) for i in ids)
    rows = [
        {
            "label": label,
            "kind": kind,
            "cells": [((r.report or {}).get("columns") or {}).get("replay", {}).get(key) for r in (left, right)],
        }  # fmt: skip
        for label, key, kind in COMPARED
    ]
    return render_page(request, "replays/replay_compare.html", {"left": left, "right": right, "rows": rows})


@login_required
@require_POST
def replay_resume(request: HttpRequest, replay_id: int) -> HttpResponse:
    replay = get_replay_for_user(request.user, replay_id)
    if replay.is_stale:
        transaction.on_commit(lambda: tasks.replay_run.delay(replay.pk))
        messages.success(request, f"Replay {replay.pk} resumes from step {replay.steps.count() + 1}.")
    return redirect_to(request, "replay_detail", replay.pk)


@login_required
@require_POST
def replay_delete(request: HttpRequest, replay_id: int) -> HttpResponse:
    replay = get_replay_for_user(request.user, replay_id)
    if not replay.is_finished:
        messages.error(request, "A replay that is still running cannot be deleted.")
        return redirect_to(request, "replay_detail", replay.pk)
    services.replay_delete(replay=replay)
    messages.success(request, f"Replay {replay_id} deleted with its orders, signals and lineage.")
    return redirect_to(request, "replay_list")
