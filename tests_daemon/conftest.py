"""Daemon tests: a temporary sqlite profile with the service-free ZeroMQ broker (aiida-core >= 2.9).

They run in their own pytest session (``make test`` runs them after ``tests/``): the session-wide profile here has
a broker, the one of ``tests/`` has none.
"""

import os
import sys
from pathlib import Path

import pytest

pytest_plugins = "aiida.tools.pytest_fixtures"

# the daemon is started with `verdi` from the environment's bin; the CalcJobs run single-threaded
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session", autouse=True)
def aiida_profile(aiida_config, aiida_profile_factory):
    """Override: the temporary sqlite_dos profile, with the ZeroMQ broker so that processes can be submitted."""
    with aiida_profile_factory(aiida_config, broker_backend="core.zeromq") as profile:
        yield profile
