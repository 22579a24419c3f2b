"""``chimes.regression``: a real fit equals the core solver, the parameter file evaluates, caching, exit codes."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida.manage.caching import enable_caching

from aiida_chimes.calculations.regression import RegressionCalculation
from aiida_chimes.chimes.io.lsq_files import fill_coefficients, parse_params_header
from aiida_chimes.chimes.params import format_params
from aiida_chimes.chimes.solvers import solve

from .conftest import run_options


def _inputs(code, fit_system, **parameters):
    inputs = {"code": code, "fit_system": fit_system, "metadata": run_options()}
    if parameters:
        inputs["parameters"] = orm.Dict(parameters)
    return inputs


# The subprocess may use another BLAS thread count than this process, which changes the summation order of the
# Gram matrix: SVD is insensitive to that (1e-12), the LARS path amplifies it (measured 1.7e-8 relative).
@pytest.mark.parametrize("parameters, rtol", [({"algorithm": "svd", "eps": 1e-5}, 1e-12),
                                              ({"algorithm": "lassolars", "alpha": 1e-3}, 1e-6)])
def test_fit_equals_core_solver(chimes_code, cn_fit_system, parameters, rtol):
    """The stored potential holds the core solver's coefficients (to round-off); statistics agree."""
    code = chimes_code("chimes-solve", "chimes.regression")
    results, node = run_get_node(RegressionCalculation, **_inputs(code, cn_fit_system, **parameters))
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    system = cn_fit_system.get_fit_system()
    result = solve(system, parameters["algorithm"], eps=parameters.get("eps", 1e-5),
                   alpha=parameters.get("alpha", 1e-4))
    meta = system.metadata
    expected = fill_coefficients(parse_params_header(meta["params_header"], meta["ff_groups_map"]), result.x)
    got = results["potential"].get_params()
    atol = rtol * np.abs(result.x).max()
    np.testing.assert_allclose(np.concatenate(got.pair_coeffs), np.concatenate(expected.pair_coeffs),
                               rtol=rtol, atol=atol)
    for a, b in zip(got.triplets, expected.triplets, strict=True):
        np.testing.assert_allclose(a.values, b.values, rtol=rtol, atol=atol)
    np.testing.assert_allclose(results["coefficients"].get_array("x"), result.x, rtol=rtol, atol=atol)
    stats = results["statistics"].get_dict()
    assert stats["rmse"] == pytest.approx(result.rmse, rel=max(rtol, 1e-10))
    assert set(stats["rmse_by_class"]) >= {"force", "energy", "stress"}
    # the file is a usable potential: the official format, readable by our evaluator
    assert format_params(got).count("PAIRTYPE PARAMS") == 3


def test_cached_second_run(aiida_profile_clean, chimes_code, cn_fit_system):
    """An identical second run is taken from the cache; other solver settings are not."""
    code = chimes_code("chimes-solve", "chimes.regression")
    _, first = run_get_node(RegressionCalculation, **_inputs(code, cn_fit_system, algorithm="svd", eps=1e-5))
    with enable_caching(identifier="aiida.calculations:chimes.regression"):
        _, second = run_get_node(RegressionCalculation, **_inputs(code, cn_fit_system, algorithm="svd", eps=1e-5))
        _, third = run_get_node(RegressionCalculation, **_inputs(code, cn_fit_system, algorithm="svd", eps=1e-4))
    assert second.base.caching.is_created_from_cache
    assert second.base.caching.get_cache_source() == first.uuid
    assert second.outputs.potential.base.attributes.get("sha256") == first.outputs.potential.base.attributes.get(
        "sha256")
    assert not third.base.caching.is_created_from_cache


def test_invalid_parameters_rejected(chimes_code, cn_fit_system):
    code = chimes_code("chimes-solve", "chimes.regression")
    for bad, message in (({"algorithm": "magic"}, "algorithm"), ({"eps": -1.0}, "eps"), ({"lambda": 1}, "unknown")):
        with pytest.raises(ValueError, match=message):
            run_get_node(RegressionCalculation, **_inputs(code, cn_fit_system, **bad))


def test_exit_codes(chimes_code, fake_script, cn_fit_system):
    """300 missing output, 301 rejected input, 302 crash, 303 unreadable file, 310 non-finite coefficients."""
    code = chimes_code("chimes-solve", "chimes.regression")
    _, good = run_get_node(RegressionCalculation, **_inputs(code, cn_fit_system))
    text = good.outputs.potential.get_content()
    lines = text.splitlines()
    k = next(i for i, ln in enumerate(lines) if ln.strip().startswith("0 ") and len(ln.split()) == 2)
    lines[k] = lines[k].split()[0] + " nan"
    nan_text = "\n".join(lines) + "\n"
    cases = {
        300: "echo 'nothing' >&2",
        301: "echo 'chimes-solve: error: fit_system.npz: bad file' >&2; exit 2",
        302: "echo 'Traceback (most recent call last):' >&2; echo 'RuntimeError: boom' >&2; exit 1",
        303: "echo 'not a parameter file' > params.txt; echo '{}' > fit_stats.json",
        310: f"cat > params.txt <<'XEOF'\n{nan_text}XEOF\necho '{{}}' > fit_stats.json",
    }
    for status, body in cases.items():
        fake = chimes_code(f"fake{status}", "chimes.regression", executable=fake_script(body, f"fake{status}.sh"))
        _, node = run_get_node(RegressionCalculation, **_inputs(fake, cn_fit_system))
        assert node.exit_status == status, (status, node.exit_status, node.exit_message)
