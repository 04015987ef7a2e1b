"""The charts of each strategy and run, as the generate_charts step stored them."""

from __future__ import annotations

import mimetypes

from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from core.pages import paginate, render_page
from lineage.models import LineageRecord
from lineage.steps import CHART_STEP, chart_entries
from trading.models import Strategy
from trading.views.owned import get_chart_step_for_user

# --- charts ---------------------------------------------------------------------------------------------------


@login_required
@require_GET
def chart_list(request: HttpRequest) -> HttpResponse:
    user = request.user
    steps = (
        LineageRecord.objects.for_owner(user)
        .filter(step_name=CHART_STEP, status="success")
        .select_related("execution__strategy__symbol")
        .defer("input_data", "metadata")
        .order_by("-recorded_at")
    )
    strategy_id = request.GET.get("strategy", "")
    strategy = None
    if strategy_id.isdigit():
        strategy = get_object_or_404(Strategy.objects.for_owner(user), pk=strategy_id)
        steps = steps.filter(execution__strategy=strategy)
    page = paginate(request, steps, per_page=12)
    runs = [{"step": step, "charts": chart_entries(step.output_data)} for step in page]
    context = {
        "page": page,
        "runs": runs,
        "strategy": strategy,
        "strategies": Strategy.objects.for_owner(user).only("id", "name").order_by("name"),
    }
    return render_page(request, "market/charts.html", context, partial="chart-runs")


@login_required
@require_GET
def chart_image(request: HttpRequest, execution_id, index: int) -> FileResponse:
    """One stored chart of one of the user's runs, streamed from storage (local files or S3) after the owner check."""
    step = get_chart_step_for_user(request.user, execution_id)
    entries = chart_entries(step.output_data)
    if index >= len(entries):
        raise Http404("no such chart")
    key = entries[index]["key"]
    try:
        handle = default_storage.open(key, "rb")
    except (FileNotFoundError, OSError):
        raise Http404("chart file missing from storage") from None
    content_type = mimetypes.guess_type(key)[0] or "image/png"
    response = FileResponse(handle, content_type=content_type)
    response["Cache-Control"] = "private, max-age=86400"  # a stored chart never changes
    return response
