from django.conf import settings
from django.core.checks import Error, Warning, register

from notifications.apprise_client import plugin_for


@register()
def notify_urls_readable(app_configs, **kwargs) -> list[Error | Warning]:
    """Every NOTIFY_URLS entry is a URL Apprise can send to (the value is never printed: it holds secrets), and a
    production server has SITE_URL for the links in its messages."""
    problems: list[Error | Warning] = [
        Error(
            f"NOTIFY_URLS entry {number} is not a URL Apprise knows (scheme '{url.split('://', 1)[0][:20]}')",
            id="notifications.E001",
        )
        for number, url in enumerate(settings.NOTIFY_URLS, start=1)
        if plugin_for(url) is None
    ]
    if settings.NOTIFY_WEBHOOK_URL and not settings.NOTIFY_WEBHOOK_URL.startswith(("http://", "https://")):
        problems.append(Error("NOTIFY_WEBHOOK_URL must be an http:// or https:// URL", id="notifications.E002"))
    if settings.PRODUCTION and not settings.SITE_URL:
        problems.append(
            Warning(
                "SITE_URL is not set: notifications carry no links to the pages they are about",
                hint="Set SITE_URL to the address traders open, e.g. https://trading.example.com",
                id="notifications.W001",
            )
        )
    return problems
