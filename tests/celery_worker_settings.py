"""Settings of the test Celery worker subprocess: the project's own settings plus a broker tuned for tests.

The worker is started as `celery -A config worker` with DJANGO_SETTINGS_MODULE pointing here; everything else
(database, Redis, storage) comes from its environment, which the `celery_worker_process` fixture sets.
"""

from config.settings import *  # noqa: F403

# Broker keys live in REDIS_URL's own database under this prefix, so the test broker needs no second database and
# cannot collide with another checkout's REDIS_URL. A short visibility timeout makes a task whose worker was killed
# come back within seconds instead of the Redis default of an hour (acks_late keeps it unacknowledged until then).
TEST_BROKER_TRANSPORT_OPTIONS = {
    "global_keyprefix": "celery-test:",
    "visibility_timeout": 3,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}
CELERY_BROKER_TRANSPORT_OPTIONS = TEST_BROKER_TRANSPORT_OPTIONS
