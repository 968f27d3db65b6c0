"""lipsdp.cli_region: --region / --center --eps --ball options (issue 9)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from lipsdp import Ball, Box, RegionError
from lipsdp.cli_region import add_region_arguments, region_from_args


def _parser():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    add_region_arguments(p)
    return p


def test_box_from_files(tmp_path):
    lo, hi = tmp_path / "lo.npy", tmp_path / "hi.npy"
    np.save(lo, np.zeros((1, 2, 2)))
    np.save(hi, np.ones((1, 2, 2)))
    reg = region_from_args(_parser().parse_args(["m.onnx", "--region", str(lo), str(hi)]))
    assert isinstance(reg, Box) and reg.dim == 4


def test_ball_and_none(tmp_path):
    c = tmp_path / "c.npy"
    np.save(c, np.arange(3.0))
    reg = region_from_args(_parser().parse_args(["m", "--center", str(c), "--eps", "0.01", "--ball", "l2"]))
    assert isinstance(reg, Ball) and reg.norm == "l2" and reg.eps == 0.01
    reg = region_from_args(_parser().parse_args(["m", "--center", str(c), "--eps", "0.5"]))
    assert reg.norm == "linf"
    assert region_from_args(_parser().parse_args(["m"])) is None


def test_errors(tmp_path):
    c = tmp_path / "c.npy"
    np.save(c, np.arange(3.0))
    with pytest.raises(RegionError, match="go together"):
        region_from_args(_parser().parse_args(["m", "--center", str(c)]))
    with pytest.raises(RegionError, match="not both"):
        region_from_args(_parser().parse_args(["m", "--center", str(c), "--eps", "1", "--region", str(c), str(c)]))
    with pytest.raises(RegionError, match="cannot read"):
        region_from_args(_parser().parse_args(["m", "--region", str(tmp_path / "nope.npy"), str(c)]))
    with pytest.raises(RegionError, match="lower > upper"):
        hi = tmp_path / "hi.npy"
        np.save(hi, np.arange(3.0) - 1)
        region_from_args(_parser().parse_args(["m", "--region", str(c), str(hi)]))
    with pytest.raises(SystemExit):
        _parser().parse_args(["m", "--ball", "l1"])


def test_cli_estimate_local_end_to_end(tmp_path, capsys):
    """`lipsdp estimate MODEL --center --eps`: a certified local bound, below the global one, region in the JSON."""
    import json

    torch = pytest.importorskip("torch")
    from lipsdp.cli import main

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).eval()
    path = tmp_path / "net.pt"
    torch.save(model, path)
    c = tmp_path / "c.npy"
    np.save(c, np.array([0.3, -0.2, 0.5]))
    code = main(["estimate", str(path), "--center", str(c), "--eps", "0.01", "--ball", "l2", "--json", "--quiet"])
    res = json.loads(capsys.readouterr().out)
    assert code == 0 and res["certified"]
    assert res["region"]["kind"] == "ball" and res["region"]["norm"] == "l2" and res["region"]["eps"] == 0.01
    assert res["lower_bound"] <= res["bound"] * (1 + 1e-9)
    assert res["bound"] <= res["details"]["global_bound"] * (1 + 1e-12)
    # a tiny ball around a point with no ReLU near its kink: the local constant is ||J(x0)||_2
    w0, w1 = model[0].weight.detach().double().numpy(), model[2].weight.detach().double().numpy()
    act = (w0 @ np.array([0.3, -0.2, 0.5]) + model[0].bias.detach().double().numpy()) > 0
    exact = np.linalg.norm(w1 @ (act[:, None] * w0), 2)
    assert res["bound"] == pytest.approx(exact, rel=1e-5)
    assert main(["estimate", str(path), "--center", str(c), "--quiet"]) == 2  # --eps missing: bad input
