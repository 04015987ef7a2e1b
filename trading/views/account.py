"""The user's settings: time zone and API tokens."""

from __future__ import annotations

from typing import cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from rest_framework.authtoken.models import Token

from core.middleware import profile_for_user, remember_time_zone
from core.pages import render_page
from trading import forms

# --- settings: time zone and API tokens ---------------------------------------------------------------------------


@login_required
def settings_view(request: HttpRequest) -> HttpResponse:
    user = cast(User, request.user)  # login_required: a User
    profile = profile_for_user(user)
    tz_form = forms.TimeZoneForm(
        request.POST if request.POST.get("action") == "time_zone" else None, initial={"time_zone": profile.time_zone}
    )
    if tz_form.is_bound and tz_form.is_valid():
        profile.time_zone = tz_form.cleaned_data["time_zone"]
        profile.save(update_fields=["time_zone"])
        remember_time_zone(request, profile.time_zone)
        messages.success(request, f"Times are now shown in {profile.time_zone}.")
        return redirect("settings")
    new_key = None
    if request.POST.get("action") == "token_create":
        Token.objects.filter(user=user).delete()
        new_key = Token.objects.create(user=user).key
    elif request.POST.get("action") == "token_revoke":
        Token.objects.filter(user=user).delete()
        messages.success(request, "API token revoked.")
        return redirect("settings")
    token = Token.objects.filter(user=user).first()
    context = {"tz_form": tz_form, "token": token, "new_key": new_key, "profile": profile}
    return render_page(request, "trading/settings.html", context, partial="tokens")
