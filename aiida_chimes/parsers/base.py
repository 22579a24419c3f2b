"""Shared parser helpers: read retrieved files and turn a missing output into the right exit code."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager

from aiida.parsers import Parser

from ..calculations.base import STDERR


class ScriptParser(Parser):
    """Parser of a CalcJob that ran one of our console scripts (errors go to stderr, one line each)."""

    def stderr_text(self) -> str:
        try:
            return self.retrieved.base.repository.get_object_content(STDERR)
        except (FileNotFoundError, OSError):
            return ""

    def has(self, name: str) -> bool:
        return name in self.retrieved.base.repository.list_object_names()

    def missing(self, filename: str):
        """Exit code for a missing output: rejected input, a crash, or nothing said at all."""
        err = self.stderr_text().strip()
        lines = [ln for ln in err.splitlines() if ln.strip()]
        if any("Traceback" in ln for ln in lines):
            return self.exit_codes.ERROR_SCRIPT_FAILED.format(stderr=lines[-1])
        errors = [ln for ln in lines if "error" in ln.lower()]
        if errors:
            return self.exit_codes.ERROR_INVALID_INPUT.format(stderr=" | ".join(errors[-3:]))
        return self.exit_codes.ERROR_MISSING_OUTPUT.format(filename=filename, stderr=" | ".join(lines[-3:]) or "-")

    @contextmanager
    def local_copy(self, name: str):
        """A real path to a retrieved file (some readers need paths); removed afterwards."""
        tmp = tempfile.mkdtemp(prefix="aiida-chimes-")
        try:
            path = os.path.join(tmp, name)
            with self.retrieved.base.repository.open(name, "rb") as src, open(path, "wb") as dst:
                shutil.copyfileobj(src, dst)
            yield path
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
