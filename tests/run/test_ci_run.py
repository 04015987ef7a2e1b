"""`.ci/run`: with PostgreSQL and Redis up, it runs `make test` then `make lint`, always both, and fails if either
fails. `make` is replaced by a recorder here, so the suite does not run itself."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.run.helpers import PROJECT_DIR, clean_env

RECORDING_MAKE = """#!/bin/sh
echo "$1" >> "$MAKE_CALLS"
case "$1" in
  test) exit "$TEST_STATUS" ;;
  lint) exit "$LINT_STATUS" ;;
esac
exit 99
"""


@pytest.mark.parametrize(
    ("test_status", "lint_status", "expected"),
    [
        pytest.param(0, 0, 0, id="both-pass"),
        pytest.param(2, 0, 1, id="tests-fail"),
        pytest.param(0, 2, 1, id="lint-fails"),
        pytest.param(2, 2, 1, id="both-fail"),
    ],
)
def test_ci_runs_the_tests_then_lint_and_fails_when_either_fails(tmp_path, test_status, lint_status, expected):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "make").write_text(RECORDING_MAKE)
    (bin_dir / "make").chmod(0o755)
    calls = tmp_path / "calls"
    env = clean_env(tmp_path, CI="true", MAKE_CALLS=str(calls), TEST_STATUS=str(test_status))
    env.update(LINT_STATUS=str(lint_status), PATH=f"{bin_dir}{os.pathsep}{env['PATH']}")

    done = subprocess.run(
        [str(PROJECT_DIR / ".ci" / "run")],
        cwd=tmp_path,  # it finds the project from its own path
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert done.returncode == expected, done.stdout + done.stderr
    assert calls.read_text().split() == ["test", "lint"]
