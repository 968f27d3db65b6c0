"""The paper's MaxMin networks, l-infinity (output label 8): naive, LipSDP-RR, LipSDP-NSR, lower bound vs reference.

``python -m benchmarks paper-linf [--quick] [--solver NAME] [--timeout S] [--skip 18fc]`` (see benchmarks/_paper.py).
"""

from __future__ import annotations

from ._paper import main as _main


def main(argv=None) -> int:
    return _main("paper-linf", argv)
