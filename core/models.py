"""What every layer may use: the user's display preferences and the database's stand-ins for Redis (a named lease
for locks, a rate slot for throttles) when REDIS_URL is not set (core.coordination)."""

from typing import TypedDict

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
