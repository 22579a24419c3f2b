"""Helpers shared by the ``aiida-chimes`` commands."""

import contextlib

import click


@contextlib.contextmanager
def reported_errors():
    """Turn input errors (bad files, which name the file and line) into a one-line CLI error, not a traceback."""
    try:
        yield
    except (ValueError, TypeError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
