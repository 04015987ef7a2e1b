"""Show every time in the signed-in user's own time zone (UserProfile.time_zone); stored times stay UTC."""

from __future__ import annotations

import zoneinfo

from django.utils import timezone

from core.models import UserProfile

SESSION_KEY = "time_zone"


def profile_for_user(user) -> UserProfile:
    """The user's profile, made on first use: users created before profiles existed, or by createsuperuser."""
    profile, _ = UserProfile.objects.get_or_create(user=user)
    return profile


def remember_time_zone(request, name: str) -> None:
    request.session[SESSION_KEY] = name
    timezone.activate(zoneinfo.ZoneInfo(name))


class UserTimeZoneMiddleware:
    """Activates the profile's time zone; the name is kept in the session so pages need no extra query."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            name = request.session.get(SESSION_KEY)
            if not name:
                name = profile_for_user(user).time_zone
                request.session[SESSION_KEY] = name
            try:
                timezone.activate(zoneinfo.ZoneInfo(name))
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                timezone.deactivate()
        else:
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
