from django.conf import settings
from django.core.checks import Error, register


@register()
def utc_everywhere(app_configs, **kwargs) -> list[Error]:
    """Every stored datetime is aware UTC; local time zones are a display concern (the user's profile)."""
    errors = []
    if settings.TIME_ZONE != "UTC":
        errors.append(Error(f"TIME_ZONE is {settings.TIME_ZONE!r}; it must be 'UTC'", id="trading.E001"))
    if not settings.USE_TZ:
        errors.append(Error("USE_TZ must be True: naive datetimes are not allowed", id="trading.E002"))
    return errors
