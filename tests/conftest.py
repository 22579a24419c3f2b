"""Shared pytest configuration.  The data helpers live in :mod:`tests.helpers` (importable from tests)."""

import pytest

from tests.helpers import DATA_DIR, FORCE_FIELDS, force_field_path  # noqa: F401  (re-exported)

# aiida-core fixtures: a temporary SQLite profile (no broker) for the whole session, localhost computer/codes.
pytest_plugins = ["aiida.tools.pytest_fixtures"]


@pytest.fixture(scope="session")
def data_dir():
    """Folder of the checked-in test data (``tests/data``)."""
    return DATA_DIR


@pytest.fixture(autouse=True)
def _restore_logging_after_cli():
    """Undo what a CLI invocation (click's CliRunner) does to logging for the rest of the session.

    aiida's ``--verbosity`` callback sets the global ``CLI_ACTIVE`` and reconfigures logging without the database
    handler, so WorkChain reports of later tests would no longer be stored; restore the in-process configuration.
    """
    yield
    from aiida.common import log

    if log.CLI_ACTIVE:
        log.CLI_ACTIVE = False
        log.CLI_LOG_LEVEL = None
        log.configure_logging(with_orm=True)
