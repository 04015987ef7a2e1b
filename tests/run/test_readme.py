"""README.md documents what exists: the two commands and every variable the settings read."""

from __future__ import annotations

import re

import pytest
from django.conf import settings

from tests.run.helpers import PROJECT_DIR

README = PROJECT_DIR / "README.md"


@pytest.fixture(scope="module")
def documented_variables() -> set[str]:
    """The names in the first column of the README's settings table."""
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", README.read_text(), flags=re.MULTILINE))


def test_readme_table_documents_every_variable_the_settings_read(documented_variables):
    missing = sorted(set(settings.ENV_VARS) - documented_variables)

    assert missing == [], f"add {missing} to the README's settings table"


def test_readme_table_documents_no_variable_the_settings_do_not_read(documented_variables):
    assert sorted(documented_variables - set(settings.ENV_VARS)) == []


@pytest.mark.parametrize("command", ["make run", "make test", "make lint", "make bench", ".ci/run"])
def test_readme_explains_the_commands(command):
    assert f"`{command}`" in README.read_text()
