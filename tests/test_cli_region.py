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
