"""Shared pieces of the aiida-chimes CalcJobs: default options and the standard output files."""

from __future__ import annotations

from aiida.common import datastructures

STDOUT = "aiida.out"
STDERR = "aiida.err"


def set_default_options(spec, parser_name: str, withmpi: bool = False) -> None:
    """One-core default resources, our parser, and the stdout/stderr file names every script writes."""
    spec.inputs["metadata"]["options"]["parser_name"].default = parser_name
    spec.inputs["metadata"]["options"]["resources"].default = {"num_machines": 1, "num_mpiprocs_per_machine": 1}
    spec.inputs["metadata"]["options"]["withmpi"].default = withmpi
    spec.inputs["metadata"]["options"]["output_filename"].default = STDOUT


def script_calcinfo(code, cmdline: list[str], retrieve: list[str], local_copy_list=None, withmpi=None):
    """CalcInfo that runs ``code`` once with ``cmdline`` and retrieves ``retrieve`` plus stdout/stderr."""
    codeinfo = datastructures.CodeInfo()
    codeinfo.code_uuid = code.uuid
    codeinfo.cmdline_params = [str(c) for c in cmdline]
    codeinfo.stdout_name = STDOUT
    codeinfo.stderr_name = STDERR
    if withmpi is not None:
        codeinfo.withmpi = withmpi
    calcinfo = datastructures.CalcInfo()
    calcinfo.codes_info = [codeinfo]
    calcinfo.local_copy_list = list(local_copy_list or [])
    calcinfo.retrieve_list = [STDOUT, STDERR, *retrieve]
    return calcinfo


def add_script_exit_codes(spec) -> None:
    """Exit codes common to all script CalcJobs (3xx: never reused from the cache)."""
    spec.exit_code(300, "ERROR_MISSING_OUTPUT", invalidates_cache=True,
                   message="The calculation did not produce the expected output file {filename}. stderr: {stderr}")
    spec.exit_code(301, "ERROR_INVALID_INPUT", invalidates_cache=True,
                   message="The script rejected its input: {stderr}")
    spec.exit_code(302, "ERROR_SCRIPT_FAILED", invalidates_cache=True,
                   message="The script crashed: {stderr}")
    spec.exit_code(303, "ERROR_CORRUPT_OUTPUT", invalidates_cache=True,
                   message="The output file {filename} could not be read: {error}")


def unknown_keys_message(params: dict, allowed) -> str | None:
    """The validator message for keys of a parameters Dict that a script would reject, or None."""
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        return f"parameters: unknown key(s) {unknown}; allowed: {sorted(allowed)}"
    return None
