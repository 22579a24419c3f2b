"""Shared pytest configuration.  The data helpers live in :mod:`tests.helpers` (importable from tests)."""

import pytest

from tests.helpers import DATA_DIR, FORCE_FIELDS, force_field_path  # noqa: F401  (re-exported)

# aiida-core fixtures: a temporary SQLite profile (no broker) for the whole session, localhost computer/codes.
pytest_plugins = ["aiida.tools.pytest_fixtures"]


@pytest.fixture(scope="session")
def data_dir():
    """Folder of the checked-in test data (``tests/data``)."""
    return DATA_DIR
