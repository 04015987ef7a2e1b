from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        # The mail plugin, the system checks, and the tasks (registered in every process, so a web request that
        # notifies finds `notifications.deliver` by name).
        from notifications import apprise_client, checks, tasks  # noqa: F401
