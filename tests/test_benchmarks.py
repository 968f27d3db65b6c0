"""Every benchmark suite runs at its ``--quick`` size and writes the JSON its table needs.

The suites are found by ``benchmarks.__main__.suites()``, so a new suite is tested without editing
this file. Results go to a temporary folder (``LIPSDP_BENCH_RESULTS``), never over the committed ones.
"""

import json

import pytest

from benchmarks.__main__ import main as bench_main
from benchmarks.__main__ import suites

from .conftest import shared_path

#: the fields each suite's rows must carry (beyond a non-empty list of rows)
REQUIRED = {
    "peers": {"network", "bound", "naive"},
}
#: suites whose networks live in ../shared (skipped with a reason where it is absent)
NEEDS_SHARED = {"paper-l2": "paper-weights", "paper-linf": "paper-weights", "paper-residual": "paper-weights",
                "real-nets": "nets"}


@pytest.mark.parametrize("suite", suites())
def test_suite_quick_run_writes_json(suite, tmp_path, monkeypatch, capsys):
    if suite in NEEDS_SHARED:
        shared_path(NEEDS_SHARED[suite])
    monkeypatch.setenv("LIPSDP_BENCH_RESULTS", str(tmp_path))
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    assert bench_main([suite, "--quick"]) == 0
    files = list(tmp_path.glob("*.json"))
    assert files, f"suite {suite} wrote no JSON"
    payload = json.loads(files[0].read_text())
    assert {"suite", "machine", "meta", "rows"} <= set(payload)
    assert payload["rows"], f"suite {suite} produced no rows"
    assert "|" in capsys.readouterr().out  # printed a markdown table
    for row in payload["rows"]:
        missing = REQUIRED.get(suite, set()) - set(row)
        assert not missing, f"{suite} row {row.get('network')} lacks {missing}"
