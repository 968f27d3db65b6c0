"""Command-line options for local bounds (wired into ``lipsdp.cli`` by the CLI module).

``--region LOWER.npy UPPER.npy``: the box lower <= x <= upper;
``--center X.npy --eps E [--ball linf|l2]``: the ball ||x - X|| <= E.
"""

from __future__ import annotations

import argparse

import numpy as np

from .bounds.region import Ball, Box, Region, RegionError

__all__ = ["add_region_arguments", "region_from_args"]


def add_region_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the local-bound options to ``parser`` (an argument group 'local bound')."""
    g = parser.add_argument_group("local bound (over an input region)")
    g.add_argument("--region", nargs=2, metavar=("LOWER.npy", "UPPER.npy"), default=None,
                   help="bound the local Lipschitz constant over the box LOWER <= x <= UPPER (.npy arrays)")
    g.add_argument("--center", metavar="X.npy", default=None,
                   help="bound the local Lipschitz constant over a ball around X (.npy array); needs --eps")
    g.add_argument("--eps", type=float, default=None, help="radius of the ball around --center")
    g.add_argument("--ball", choices=("linf", "l2"), default="linf", help="norm of the ball (default linf)")


def _load(path: str, what: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise RegionError(f"{what}: cannot read {path!r} as a .npy array ({exc})") from exc


def region_from_args(args: argparse.Namespace) -> Region | None:
    """The Box/Ball the parsed options describe, or None for a global bound. Raises RegionError."""
    region = getattr(args, "region", None)
    center = getattr(args, "center", None)
    eps = getattr(args, "eps", None)
    if region is not None:
        if center is not None or eps is not None:
            raise RegionError("give either --region or --center/--eps, not both")
        return Box(_load(region[0], "--region LOWER"), _load(region[1], "--region UPPER"))
    if center is None and eps is None:
        return None
    if center is None or eps is None:
        raise RegionError("--center and --eps go together")
    return Ball(_load(center, "--center"), eps, norm=getattr(args, "ball", "linf"))
