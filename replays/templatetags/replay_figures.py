from django import template

from core.templatetags.ui import money, pct

register = template.Library()


@register.filter
def figure(value, kind: str) -> str:
    """One report figure as the report shows it; kinds: percent, drawdown, number, count, usd."""
    if value is None:
        return "—"
    if kind == "percent":
        return pct(value, 2)
    if kind == "drawdown":
        return pct(-value, 2)
    if kind == "usd":
        return money(value)
    if kind == "count":
        return str(value)
    return f"{value:.2f}"
