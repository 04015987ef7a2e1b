"""The user's settings: time zone, notification channels and API tokens."""

from __future__ import annotations

from typing import cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from rest_framework.authtoken.models import Token

from core.middleware import profile_for_user, remember_time_zone
from core.models import UserProfile
from core.pages import render_page, submitted_by_htmx
from notifications.forms import ChannelAddForm, ChannelRoutingForm
from notifications.services import channel_add, channel_remove, channel_test, channel_update
from notifications.views import channels_context, get_channel_for_user
from trading import forms

TEMPLATE = "trading/settings.html"
CHANNEL_ACTIONS = {"channel_add", "channel_update", "channel_test", "channel_remove"}

# --- settings: time zone, channels and API tokens -----------------------------------------------------------------


@login_required
def settings_view(request: HttpRequest) -> HttpResponse:
    user = cast(User, request.user)
    action = request.POST.get("action", "")
    if request.method == "POST" and action in CHANNEL_ACTIONS:
        return _channel_action(request, user, action)
    profile = profile_for_user(user)
    tz_form = forms.TimeZoneForm(
        request.POST if action == "time_zone" else None, initial={"time_zone": profile.time_zone}
    )
    if tz_form.is_bound and tz_form.is_valid():
        profile.time_zone = tz_form.cleaned_data["time_zone"]
        profile.save(update_fields=["time_zone"])
        remember_time_zone(request, profile.time_zone)
        messages.success(request, f"Times are now shown in {profile.time_zone}.")
        return redirect("settings")
    new_key = None
    if action == "token_create":
        Token.objects.filter(user=user).delete()
        new_key = Token.objects.create(user=user).key
    elif action == "token_revoke":
        Token.objects.filter(user=user).delete()
        messages.success(request, "API token revoked.")
        return redirect("settings")
    return _page(request, user, tz_form=tz_form, new_key=new_key, partial="tokens", profile=profile)


def _page(
    request: HttpRequest,
    user: User,
    *,
    tz_form: forms.TimeZoneForm | None = None,
    new_key: str | None = None,
    partial: str,
    status: int = 200,
    profile: UserProfile | None = None,
    **channels: object,
) -> HttpResponse:
    profile = profile or profile_for_user(user)
    context = {
        "tz_form": tz_form or forms.TimeZoneForm(initial={"time_zone": profile.time_zone}),
        "token": Token.objects.filter(user=user).first(),
        "new_key": new_key,
        "profile": profile,
        **channels_context(user, **channels),  # type: ignore[arg-type]
    }
    response = render_page(request, TEMPLATE, context, partial=partial)
    response.status_code = status
    return response


def _channel_action(request: HttpRequest, user: User, action: str) -> HttpResponse:
    """Add, route, test or remove one of the user's channels. A URL that is refused comes back on the URL field,
    with nothing stored; the page never shows a stored URL, only its masked form."""
    if action == "channel_add":
        form = ChannelAddForm(request.POST)
        if form.is_valid():
            try:
                channel = channel_add(
                    owner=user,
                    url=form.cleaned_data["url"],
                    name=form.cleaned_data["name"],
                    kinds=form.cleaned_data["kinds"],
                )
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    for error in errors:
                        form.add_error(field if field in form.fields else None, error)
            else:
                messages.success(request, f"Channel {channel.masked} added. Send a test to check it.")
                return _after(request, user)
        return _page(request, user, partial="channels", status=422, add_form=form)
    channel = get_channel_for_user(user, request.POST.get("channel", ""))
    if action == "channel_update":
        routing = ChannelRoutingForm(request.POST)
        if routing.is_valid():
            channel_update(
                channel=channel, kinds=routing.cleaned_data["kinds"], enabled=routing.cleaned_data["enabled"]
            )
            messages.success(request, f"{channel.label}: saved.")
        else:
            messages.error(request, f"{channel.label}: not saved ({routing.errors.as_text()}).")
    elif action == "channel_test":
        sent = channel_test(channel=channel)
        if sent.ok:
            messages.success(request, f"Test sent to {channel.label}.")
        else:
            messages.error(request, f"Test to {channel.label} failed: {sent.error}")
    else:
        label = channel.label
        channel_remove(channel=channel)
        messages.success(request, f"Channel {label} removed.")
    return _after(request, user)


def _after(request: HttpRequest, user: User) -> HttpResponse:
    if submitted_by_htmx(request):
        return _page(request, user, partial="channels")
    return redirect("settings")
