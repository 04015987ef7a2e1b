"""What every page view shares: render the whole page, or only the named partial when HTMX asks for it."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.paginator import Page, Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django_htmx.middleware import HtmxDetails

PAGE_SIZE = 50


class HtmxHttpRequest(HttpRequest):
    """For a view's annotation only: the request it gets is Django's own, with `htmx` set by django-htmx's
    middleware."""

    htmx: HtmxDetails


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
    return bool(htmx and not htmx.boosted)


def redirect_to(request: HttpRequest, to: str, *args, **kwargs) -> HttpResponse:
    """After a successful POST: a normal redirect, or HX-Redirect so HTMX loads the whole next page."""
    url = resolve_url(to, *args, **kwargs)
    if submitted_by_htmx(request):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


@dataclass
class Window:
    """One page of a long list, without counting the whole list: only whether there is a next page."""

    object_list: list
    number: int
    has_next: bool

    def __iter__(self):
        return iter(self.object_list)

    def __len__(self) -> int:
        return len(self.object_list)

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    def has_other_pages(self) -> bool:
        return self.has_next or self.has_previous

    def next_page_number(self) -> int:
        return self.number + 1

    def previous_page_number(self) -> int:
        return self.number - 1


def page_number(request: HttpRequest) -> int:
    try:
        return max(1, int(request.GET.get("page", 1)))
    except ValueError:
        return 1
