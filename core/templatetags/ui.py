"""Formatting for the pages: money as money, prices and quantities without noise, statuses as badges."""

from __future__ import annotations

import datetime as dt
import json
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache

from django import template
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

register = template.Library()

_CURRENCY_SIGNS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CAD": "C$", "AUD": "A$", "CHF": "CHF "}

_GOOD = {"COMPLETED", "FILLED", "success", "BUY", "WIN", "active", "connected", "sent"}
_BAD = {"FAILED", "REJECTED", "error", "SELL", "LOSS", "UNKNOWN", "EXPIRED", "disconnected", "failed"}
_WARN = {"SKIPPED", "skipped", "CANCEL_REQUESTED", "CANCELLED", "paused", "PARTIALLY_FILLED", "competing"}
_INFO = {"RUNNING", "SUBMITTED", "SUBMITTING", "PENDING", "OPEN", "pending"}


def _decimal(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        return None


@register.filter
def money(value, currency: str = "USD") -> str:
    """12345.6 -> "$12,345.60"; negative amounts get a real minus sign before the currency sign."""
    amount = _decimal(value)
    if amount is None:
        return "—"
    sign = "−" if amount < 0 else ""
    symbol = _CURRENCY_SIGNS.get(currency or "USD", f"{currency} ")
    return f"{sign}{symbol}{abs(amount).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,}"


@register.filter
def signed_money(value, currency: str = "USD") -> str:
    amount = _decimal(value)
    if amount is None:
        return "—"
    return ("+" if amount > 0 else "") + money(amount, currency)


@register.filter
def price(value) -> str:
    """Prices keep 2 decimals, or up to 6 when the instrument needs them (FX, crypto)."""
    amount = _decimal(value)
    if amount is None:
        return "—"
    text = f"{amount.quantize(Decimal('0.000001')):,.6f}".rstrip("0")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


@register.filter
def qty(value) -> str:
    amount = _decimal(value)
    if amount is None:
        return "—"
    text = f"{amount:,.6f}".rstrip("0").rstrip(".")
    return text or "0"


@register.filter
def pct(value, places: int = 1) -> str:
    """A fraction as a percentage: 0.0123 -> "1.2%"."""
    amount = _decimal(value)
    if amount is None:
        return "—"
    return f"{amount * 100:.{int(places)}f}%"


@register.filter
def tone(value) -> str:
    """The CSS class for a signed number: good when above zero, bad below."""
    amount = _decimal(value)
    if amount is None or amount == 0:
        return ""
    return "good" if amount > 0 else "bad"


@register.filter
def status_class(value) -> str:
    text = str(value)
    if text in _GOOD:
        return "good"
    if text in _BAD:
        return "bad"
    if text in _WARN:
        return "warn"
    if text in _INFO:
        return "info"
    return ""


@register.simple_tag
def badge(value, label: str = ""):
    return format_html('<span class="badge {}">{}</span>', status_class(value), label or value)


@register.filter
def step_title(name: str) -> str:
    words = str(name).replace("_", " ").capitalize().split(" ")
    return " ".join("LLM" if word.lower() == "llm" else word for word in words)


@register.simple_tag
def duration(start, end) -> str:
    """How long between two instants: "850 ms", "12.5 s", "3 min 4 s"."""
    if not start or not end:
        return "—"
    seconds = (end - start).total_seconds()
    if seconds < 60:
        return ms(int(seconds * 1000))
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s"


@register.filter
def pretty_json(value) -> str:
    return json.dumps(value, indent=2, sort_keys=False, default=str, ensure_ascii=False)


@register.filter
def get(mapping, key):
    if isinstance(mapping, dict):
        return mapping.get(key)
    return None


@register.filter
def ms(value) -> str:
    """Milliseconds made readable: 850 -> "850 ms", 12500 -> "12.5 s"."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return "—"
    return f"{number} ms" if number < 1000 else f"{number / 1000:.1f} s"


# strftime patterns for `when`; Django's `date` filter parses its format on every call, which shows on long lists.
_WHEN_FORMATS = {
    "short": "%b %-d, %H:%M",
    "seconds": "%b %-d, %H:%M:%S",
    "day": "%b %-d, %Y",
    "long": "%b %-d, %Y %H:%M",
    "full": "%b %-d, %Y %H:%M:%S %Z",
}


@register.filter
def when(value, style: str = "short") -> str:
    """An aware datetime in the active (the user's) time zone: "Mar 5, 14:30", "Mar 5, 2024 14:30"..."""
    if not value:
        return "—"
    return timezone.localtime(value).strftime(_WHEN_FORMATS[style])


@lru_cache(maxsize=64)
def _url(url_name: str) -> str:
    return reverse(url_name)


@lru_cache(maxsize=8192)
def _url_with(url_name: str, args: tuple) -> str:
    return reverse(url_name, args=args)


@register.simple_tag
def row_url(url_name: str, *args) -> str:
    """`{% url %}` for the rows of long tables: a URL depends only on its name and arguments, so it is worked out
    once per process (reversing fifty row links on every page view shows in the profile)."""
    return _url_with(url_name, tuple(str(arg) for arg in args))


@register.simple_tag(takes_context=True)
def nav_link(context, url_name: str, label: str, exact: bool = False):
    url = _url(url_name)
    path = context["request"].path
    active = path == url if exact else path.startswith(url)
    return format_html('<a href="{}"{}>{}</a>', url, ' class="active"' if active else "", label)


@register.simple_tag(takes_context=True)
def query(context, **changes) -> str:
    """The current query string with some parameters replaced (None drops one): keeps filters across pages."""
    params = context["request"].GET.copy()
    for key, value in changes.items():
        if value is None or value == "":
            params.pop(key, None)
        else:
            params[key] = value
    encoded = params.urlencode()
    return f"?{encoded}" if encoded else "?"


SESSION_BAR_SIZES = frozenset({"1d", "1w"})


@register.filter
def bar_time(value, bar_size: str = "1d") -> str:
    """A bar's time as a trader reads it: a daily or weekly bar is its session date (the date of its 00:00 UTC key,
    in every viewer's zone: it is never a day early west of Greenwich); an intraday bar is its start in the
    viewer's zone."""
    if not value:
        return "—"
    if bar_size in SESSION_BAR_SIZES:
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d")
    return timezone.localtime(value).strftime(_WHEN_FORMATS["long"])
