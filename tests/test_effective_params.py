"""What the backends ran with: a parameter a toolkit has no equivalent for is printed as not used."""

from __future__ import annotations

from bench.attacks.params import CWL2Params
from bench.attacks.registry import effective_params
from bench.report.format import render_params


def test_toolkit_cw_says_c_max_is_not_used():
    p = CWL2Params(c_min=1.0, c_max=100.0).model_dump()
    for backend in ("art", "foolbox"):
        eff = effective_params("cw_l2", backend, p)
        assert eff["c_max"].startswith(f"100.0 (not used by {backend}")
        assert eff["c_min"] == "1.0"
        assert f"c_max=100.0 (not used by {backend}" in render_params(eff)
    assert effective_params("cw_l2", "native", p)["c_max"] == "100.0"  # the native CW searches c up to c_max
