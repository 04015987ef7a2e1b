"""DJANGO_ENV=production: the deployment checks pass and the secure settings are on."""

from __future__ import annotations

import json
import secrets
import subprocess

import pytest

from tests.run.helpers import PROJECT_DIR, VENV_BIN, clean_env


def production_env(tmp_path, **extra: str) -> dict[str, str]:
    return clean_env(
        tmp_path,
        DJANGO_ENV="production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="trading.example.com",
        **extra,
    )


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "python"), *args], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_passes_without_a_security_warning(tmp_path):
    done = run(production_env(tmp_path), "manage.py", "check", "--deploy")

    assert done.returncode == 0, done.stderr
    assert "security." not in done.stdout + done.stderr


def test_production_turns_on_secure_cookies_hsts_and_the_https_redirect(tmp_path):
    code = (
        "import django, json, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'; django.setup()\n"
        "from django.conf import settings as s\n"
        "print(json.dumps({name: getattr(s, name) for name in ('DEBUG', 'SESSION_COOKIE_SECURE', "
        "'CSRF_COOKIE_SECURE', 'SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_SSL_REDIRECT')}))"
    )

    done = run(production_env(tmp_path), "-c", code)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "DEBUG": False,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_SSL_REDIRECT": True,
    }


@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param({"DJANGO_ENV": "production"}, "DJANGO_SECRET_KEY must be set", id="production-without-key"),
        pytest.param({"DJANGO_ENV": "staging"}, "use 'dev' or 'production'", id="unknown-environment"),
        pytest.param({"DJANGO_DEBUG": "maybe"}, "is not a boolean", id="debug-not-a-boolean"),
    ],
)
def test_a_bad_setting_stops_start_up_with_a_message_naming_it(tmp_path, env, message):
    done = run(clean_env(tmp_path, **env), "manage.py", "check")

    assert done.returncode != 0
    assert message in done.stderr
