"""What every layer may use: the user's display preferences and the database's stand-ins for Redis (a named lease
for locks, a rate slot for throttles) when REDIS_URL is not set (core.coordination)."""

from typing import TypedDict, TypeVar

from django.conf import settings
from django.db import models


class DecimalDigits(TypedDict):
    """A DecimalField's size, spread into its arguments: `models.DecimalField(**MONEY)`."""

    max_digits: int
    decimal_places: int


class UserProfile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    time_zone = models.CharField(max_length=64, default="America/New_York")

    def __str__(self) -> str:
        return f"{self.user} ({self.time_zone})"


class Lease(models.Model):
    """A named lock held until `expires_at`, for setups without Redis (core.coordination)."""

    name = models.CharField(max_length=200, unique=True)
    token = models.CharField(max_length=64, blank=True)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.name


class RateSlot(models.Model):
    """The next instant a throttled key may be used, for setups without Redis (core.coordination)."""

    key = models.CharField(max_length=200, unique=True)
    next_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.key


_M = TypeVar("_M", bound=models.Model)


class LiveManager(models.Manager[_M]):
    """The default manager of a model that replays write into: live rows only, so no page, API, beat task or
    service that lists rows can see a replay's by forgetting a filter. Code handed a replay's own strategy or
    account reads through the model's `with_replays` manager."""

    def get_queryset(self) -> models.QuerySet[_M]:
        return super().get_queryset().filter(is_replay=False)


class ReplayMarked(models.Model):
    """A row a replay may write: marked when it is written, from the replay's copy of the strategy or its account."""

    is_replay = models.BooleanField(default=False, editable=False, help_text="written by a replay: never live")

    class Meta:
        abstract = True
