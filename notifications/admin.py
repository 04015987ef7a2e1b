"""Admin: channels shown only masked (their URLs hold secrets and are edited on the settings page), notifications
with their deliveries. Nothing here is editable: these are records of what was sent."""

from __future__ import annotations

from django.contrib import admin

from notifications.models import Channel, Delivery, Notification


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ["owner", "name", "masked", "enabled", "failures", "last_sent_at", "last_failed_at"]
    list_filter = ["enabled"]
    search_fields = ["owner__username", "name"]
    fields = readonly_fields = (
        "owner",
        "name",
        "masked",
        "kinds",
        "enabled",
        "failures",
        "last_error",
        "last_sent_at",
        "last_failed_at",
        "created_at",
    )

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # a channel is added on the settings page, where its URL is checked


class DeliveryInline(admin.TabularInline):
    model = Delivery
    extra = 0
    can_delete = False
    fields = readonly_fields = ("destination", "state", "attempts", "error", "sent_at", "updated_at")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["created_at", "kind", "subject", "owner", "strategy"]
    list_filter = ["kind"]
    search_fields = ["subject", "body", "owner__username"]
    list_select_related = ["owner", "strategy"]
    date_hierarchy = "created_at"
    raw_id_fields = ["owner", "strategy", "order", "execution"]
    inlines = [DeliveryInline]
