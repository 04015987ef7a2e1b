"""The shared test harness: real PostgreSQL, a Redis database of its own, an S3 server on loopback, personas.

`make test` sets DATABASE_URL (PostgreSQL) and REDIS_URL (db 15). Mock only the outside world (IBKR, Anthropic).
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model


@pytest.fixture
def owner(db):
    return get_user_model().objects.create_user("owner", "owner@example.com", "owner-pass-1234")


@pytest.fixture
def other_user(db):
    return get_user_model().objects.create_user("other", "other@example.com", "other-pass-1234")


@pytest.fixture
def staff_user(db):
    return get_user_model().objects.create_user(
        "staff", "staff@example.com", "staff-pass-1234", is_staff=True, is_superuser=True
    )
