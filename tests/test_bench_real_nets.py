"""``python -m benchmarks real-nets --quick`` runs and its JSON has the table's fields (CI; ~1 minute)."""

from __future__ import annotations

import json

import pytest

from .conftest import shared_path


@pytest.mark.slow
def test_real_nets_quick(tmp_path):
    pytest.importorskip("onnx")
    shared_path("nets", "ACASXU_run2a_1_1_batch_2000.onnx")
    from benchmarks.real_nets import main

    assert main(["--quick", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "real_nets_quick.json").read_text())
    assert data["machine"]["cpus"] and len(data["rows"]) == 2
    for row in data["rows"]:
        assert row["N_solved"] == 305
        assert row["lower"] <= row["layer"] <= row["naive"]
        assert row["layer_status"] in ("optimal", "inaccurate", "fallback")
