"""Every 3xx exit code of our CalcJobs invalidates the cache (failures must never be reused)."""

import pytest
from aiida.plugins import CalculationFactory

PLUGINS = ["chimes.design_matrix", "chimes.regression", "chimes.md", "chimes.label_xtb"]


@pytest.mark.parametrize("entry_point", PLUGINS)
def test_3xx_invalidate_cache(entry_point):
    cls = CalculationFactory(entry_point)
    codes = [c for c in cls.spec().exit_codes.values() if 300 <= c.status < 400]
    assert codes, f"{entry_point} defines no 3xx exit code"
    for code in codes:
        assert code.invalidates_cache, f"{entry_point} exit code {code.status} {code.message}"


@pytest.mark.parametrize("entry_point", PLUGINS)
def test_parser_entry_point_is_default(entry_point):
    cls = CalculationFactory(entry_point)
    assert cls.spec().inputs["metadata"]["options"]["parser_name"].default == entry_point
