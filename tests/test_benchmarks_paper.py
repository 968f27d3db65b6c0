"""The paper benchmark suites run (--quick) and their JSON has the fields the tables need."""

import json

import pytest

from .conftest import shared_path

FIELDS = {"network", "naive", "ref_mp", "rr", "nsr", "ref_nsr", "rel_nsr", "lower", "status", "time_nsr"}


def _run(suite, tmp_path, extra=()):
    shared_path("paper-weights")
    from benchmarks.__main__ import main

    assert main([suite, "--quick", "--out-dir", str(tmp_path), *extra]) == 0
    data = json.loads(next(tmp_path.glob("*.json")).read_text())
    rows = data["rows"] if isinstance(data, dict) and "rows" in data else data
    assert rows and all(FIELDS <= set(r) for r in rows)
    return rows


@pytest.mark.slow
def test_paper_l2_quick(tmp_path):
    rows = _run("paper-l2", tmp_path)
    for r in rows:
        assert r["error"] is None and abs(r["rel_nsr"]) < 1e-3
        assert r["lower"] <= r["nsr"] <= r["naive"]


@pytest.mark.slow
def test_paper_residual_quick(tmp_path):
    rows = _run("paper-residual", tmp_path)
    assert abs(rows[0]["rel_nsr"]) < 1e-3


@pytest.mark.slow
def test_paper_linf_quick(tmp_path):
    import lipsdp

    solver = "sdpa" if "sdpa" in lipsdp.available_solvers() else "auto"
    rows = _run("paper-linf", tmp_path, ["--no-baseline", "--solver", solver])  # ~5 min
    for r in rows:
        assert r["error"] is None and r["nsr"] <= r["naive"]
