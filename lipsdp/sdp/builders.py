"""Dispatch from a network's structure to the LipSDP formulation that bounds it.

Each architecture registers a builder: ``applies(network) -> bool`` and
``build(network, c, norm, method) -> LMIPair``, where ``c`` is the output
selection matrix (or None) and ``method`` the multiplier structure. The first
registered builder that applies wins; feedforward networks are handled by
:mod:`lipsdp.sdp.feedforward`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import UnsupportedLayerError
from .lmi import LMI

__all__ = ["LMIPair", "register_builder", "build_lmis", "BUILDERS"]


@dataclass
class LMIPair:
    """The LMI handed to the solver and the one certified.

    They share the variables y; ``solve`` may be an exactly equivalent, smaller LMI
    (e.g. the l2 input reduction), ``certify`` is always the full LMI of the network.
    """

    solve: LMI
    certify: LMI


@dataclass
class Builder:
    name: str
    applies: Callable
    build: Callable


#: registered builders, tried in order
BUILDERS: list[Builder] = []


def register_builder(name: str, applies: Callable, build: Callable, first: bool = False) -> None:
    """Register a formulation (``first=True`` puts it ahead of the existing ones)."""
    b = Builder(name, applies, build)
    if first:
        BUILDERS.insert(0, b)
    else:
        BUILDERS.append(b)


def build_lmis(network, norm: str, method: str, c=None) -> LMIPair:
    """The LMIs bounding ``c @ network`` in ``norm`` with ``method`` multipliers."""
    for b in BUILDERS:
        if b.applies(network):
            return b.build(network, c, norm, method)
    kinds = sorted({type(layer).__name__ for layer in network.layers})
    raise UnsupportedLayerError(
        f"no LipSDP formulation applies to this network (layer kinds: {', '.join(kinds)})"
    )
