"""What every page view shares: render the whole page, or only the named partial when HTMX asks for it."""

from __future__ import annotations

from django.core.paginator import Page, Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render, resolve_url

PAGE_SIZE = 50


def render_page(request: HttpRequest, template: str, context: dict, *, partial: str | None = None) -> HttpResponse:
    """A full page for a normal request; `template#partial` for an HTMX request that targets one region.

    Boosted requests and history restores want the whole page, so only a plain HTMX request gets the fragment.
    """
    htmx = getattr(request, "htmx", None)
    if partial and htmx and not htmx.boosted and not htmx.history_restore_request:
        return render(request, f"{template}#{partial}", context)
    return render(request, template, context)


def paginate(request: HttpRequest, queryset, *, per_page: int = PAGE_SIZE) -> Page:
    return Paginator(queryset, per_page).get_page(request.GET.get("page"))


def submitted_by_htmx(request: HttpRequest) -> bool:
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.boosted


def redirect_to(request: HttpRequest, to: str, *args, **kwargs) -> HttpResponse:
    """After a successful POST: a normal redirect, or HX-Redirect so HTMX loads the whole next page."""
    url = resolve_url(to, *args, **kwargs)
    if submitted_by_htmx(request):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


def paginate_by_id(request: HttpRequest, queryset, *, rows, per_page: int = PAGE_SIZE) -> Page:
    """Paginate over primary keys only, then load that page's rows from `rows` (with its select_related).

    Sorting thousands of narrow (id, sort key) rows and then fetching fifty wide ones is several times faster than
    sorting the wide joined rows themselves; the page keeps the order of `queryset`.
    """
    page = Paginator(queryset.values_list("pk", flat=True), per_page).get_page(request.GET.get("page"))
    ids = list(page.object_list)
    found = rows.in_bulk(ids)
    page.object_list = [found[pk] for pk in ids if pk in found]
    return page
