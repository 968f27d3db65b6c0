"""LMI assembly (stage 4): one LMI representation, one builder per architecture and norm.

``build_lmis(network, norm, method, c)`` dispatches to the registered builder for the
network's structure (see :mod:`lipsdp.sdp.builders`).
"""

from .builders import BUILDERS, LMIPair, build_lmis, register_builder
from .feedforward import build_feedforward, operator_norm_estimate, pow2_scale
from .dag import build_dag  # residual and implicit networks (registered after feedforward)
from .lmi import LMI, AtomBlock, MultiplierGroup

__all__ = ["LMI", "AtomBlock", "MultiplierGroup", "LMIPair", "build_lmis", "register_builder", "BUILDERS",
           "build_feedforward", "build_dag", "operator_norm_estimate", "pow2_scale"]
