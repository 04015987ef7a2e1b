"""Helpers for the tests of how the project is run: a clean process environment, a free port."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def clean_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a fresh shell on a fresh machine: none of the service variables the test run itself uses
    (DATABASE_URL, REDIS_URL, CELERY_BROKER_URL...), the project's interpreter first on PATH, state in `var_dir`."""
    env = {
        "PATH": f"{VENV_BIN}{os.pathsep}/usr/local/bin{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": os.environ.get("HOME", str(var_dir)),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "DJANGO_VAR_DIR": str(var_dir),
    }
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
