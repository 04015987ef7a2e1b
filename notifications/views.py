"""The notifications page: what was sent, to where, and how each delivery went. The channels card of the settings
page (trading.views.account) reads `channels_context`."""

from __future__ import annotations

from typing import cast

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404

from core.pages import paginate, render_page
from notifications.forms import ChannelAddForm, ChannelRoutingForm
from notifications.models import Channel, Delivery, Notification, NotificationKind
from notifications.services import server_defaults


def get_channel_for_user(user: User, channel_id: str) -> Channel:
    """The user's own channel, else 404 (another user's id and a malformed one alike)."""
    if not channel_id.isdigit():
        raise Http404("No such channel")
    return get_object_or_404(Channel.objects.for_owner(user), pk=int(channel_id))


def channels_context(user: User, *, add_form: ChannelAddForm | None = None) -> dict:
    channels = list(Channel.objects.for_owner(user))
    return {
        "channels": [
            (
                channel,
                ChannelRoutingForm(
                    initial={"kinds": channel.kinds, "enabled": channel.enabled}, auto_id=f"id_c{channel.pk}_%s"
                ),
            )
            for channel in channels
        ],
        "channel_add_form": add_form or ChannelAddForm(),
        "server_defaults": [] if channels else server_defaults(user),
    }


@login_required
def notification_list(request: HttpRequest) -> HttpResponse:
    user = cast(User, request.user)
    kind = request.GET.get("kind", "")
    notifications = (
        Notification.objects.for_owner(user)
        .recent()
        .select_related("strategy")
        .prefetch_related(Prefetch("deliveries", queryset=Delivery.objects.order_by("pk")))
    )
    if kind in NotificationKind.values:
        notifications = notifications.filter(kind=kind)
    else:
        kind = ""
    page = paginate(request, notifications)
    context = {"page": page, "kind": kind, "kind_choices": NotificationKind.choices}
    return render_page(request, "notifications/notification_list.html", context, partial="notifications")
