"""Prompts: the templates and their immutable versions, a diff of two versions, a preview against a strategy."""

from __future__ import annotations

import difflib

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Count, Max
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from core.pages import redirect_to, render_page
from signals_app.forms import PromptTemplateForm, PromptVersionForm
from signals_app.models import PromptTemplate
from signals_app.prompts import CONTEXT_VARIABLES, PromptRenderError, prompt_version_create, render_prompt
from trading.analysis import preview_context
from trading.models import Strategy
from trading.views.owned import get_editable_prompt_for_user, get_prompt_for_user

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
        "strategies": Strategy.objects.for_owner(request.user).only("id", "name").order_by("name"),
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
    return preview_context(strategy)
