"""The paper's MaxMin networks, l2: naive, LipSDP-RR, LipSDP-NSR, lower bound vs reference.

``python -m benchmarks paper-l2 [--quick] [--solver NAME] [--timeout S] [--skip 18fc]`` (see benchmarks/_paper.py).
"""

from __future__ import annotations

from ._paper import main as _main


def main(argv=None) -> int:
    return _main("paper-l2", argv)
