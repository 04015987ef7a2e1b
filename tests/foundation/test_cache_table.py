"""The database cache works after migrations alone: the embedded default caches without Redis."""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.db import connection

DATABASE_CACHE = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "django_cache"}}


@pytest.mark.django_db
def test_migrations_create_the_database_cache_table():
    assert "django_cache" in connection.introspection.table_names()


@pytest.mark.django_db
def test_database_cache_stores_and_returns_values(settings):
    settings.CACHES = DATABASE_CACHE
    cache = caches["default"]

    cache.set("harness:answer", {"value": 42}, timeout=60)

    assert type(cache).__name__ == "DatabaseCache"
    assert cache.get("harness:answer") == {"value": 42}
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM django_cache")
        assert cursor.fetchone()[0] == 1
