"""The ``lipsdp`` command line: exit codes, JSON output, model files, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from lipsdp.cli import main, parse_output

from .conftest import REPO, shared_path


def _torch_file(tmp_path, maxpool=False):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    layers = [nn.Conv2d(1, 2, 3), nn.ReLU()] + ([nn.MaxPool2d(2)] if maxpool else [nn.AvgPool2d(2)])
    model = nn.Sequential(*layers, nn.Flatten(), nn.Linear(2 * 2 * 2, 3)).eval()
    path = tmp_path / "net.pt"
    torch.save(model, path)
    return path


def test_estimate_torch_file_json(tmp_path, capsys):
    path = _torch_file(tmp_path)
    out_file = tmp_path / "r.json"
    code = main(["estimate", str(path), "--input-shape", "1,6,6", "--json", "--output-file", str(out_file),
                 "--quiet"])
    assert code == 0
    res = json.loads(capsys.readouterr().out)
    assert res["certified"] and res["bound"] > 0
    assert res["lower_bound"] <= res["bound"] <= res["naive_bound"] * (1 + 1e-9)
    assert json.loads(out_file.read_text())["bound"] == res["bound"]


def test_bad_inputs_exit_2_with_one_line(tmp_path, capsys):
    assert main(["estimate", str(tmp_path / "missing.onnx"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lipsdp: error: no such model file")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x01garbage\xff\xfe" * 7)
    pytest.importorskip("onnx")
    assert main(["estimate", str(corrupt), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "corrupt.onnx" in err[0]
    assert main(["estimate", str(_torch_file(tmp_path, maxpool=True)), "--input-shape", "1,6,6", "--quiet"]) == 2
    assert "MaxPool2d" in capsys.readouterr().err
    assert main(["estimate", str(_torch_file(tmp_path)), "--input-shape", "1,6,6", "--norm", "l7", "--quiet"]) == 2
    assert main(["bogus"]) == 2
    pt2 = tmp_path / "m.pt2"
    pt2.write_bytes(b"x")
    assert main(["info", str(pt2)]) == 2
    assert "torch.export archives are not supported" in capsys.readouterr().err


def test_too_large_exits_4(tmp_path, capsys):
    path = _torch_file(tmp_path)
    assert main(["estimate", str(path), "--input-shape", "1,6,6", "--memory-limit", "1e-6", "--quiet"]) == 4
    assert "order N = " in capsys.readouterr().err


def test_parse_output():
    assert parse_output("3", 5) == [3]
    assert parse_output("0,2,4", 5) == [0, 2, 4]
    np.testing.assert_array_equal(parse_output("1-3", 4), [[0, 1, 0, -1]])
    assert parse_output(None, 4) is None
    with pytest.raises(Exception, match="out of range"):
        parse_output("7", 4)


@pytest.mark.slow
def test_estimate_acas_json(capsys):
    pytest.importorskip("onnx")
    path = shared_path("nets", "ACASXU_run2a_1_1_batch_2000.onnx")
    code = main(["estimate", str(path), "--method", "layer", "--json", "--quiet", "--output", "0"])
    assert code == 0
    res = json.loads(capsys.readouterr().out)
    assert res["certified"] and res["lower_bound"] <= res["bound"] <= res["naive_bound"]


def test_info_and_solvers(tmp_path, capsys):
    path = _torch_file(tmp_path)
    assert main(["info", str(path), "--input-shape", "1,6,6", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    # 36 inputs + 32 neurons, solved after the exact l2 input reduction to the 32 first-layer rows
    assert info["lmi"]["neuron"]["order_certified"] == 36 + 32 and info["lmi"]["neuron"]["order_solved"] == 64
    assert info["out_dim"] == 3
    assert main(["solvers", "--json"]) == 0
    assert "scs" in json.loads(capsys.readouterr().out)["available"]


def test_subprocess_smoke(tmp_path):
    path = _torch_file(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "lipsdp", "info", str(path), "--input-shape", "1,6,6"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "LMI order" in proc.stdout
