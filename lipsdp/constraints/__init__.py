"""Quadratic constraints (stage 3): one QC class per kind of activation layer.

``qc_for(layer)`` returns the QC that applies to an activation layer; new
activation kinds register their QC in ``QC_REGISTRY``.
"""

from ..errors import UnsupportedLayerError
from ..network.layers import Activation
from .base import MULTIPLIER_STRUCTURES, QCAtoms, QuadraticConstraint
from ..network.group import GroupActivation
from .group import GroupQC
from .slope import SlopeRestrictedQC, dyadic_slopes

#: activation layer class -> QC instance
QC_REGISTRY: dict = {Activation: SlopeRestrictedQC(), GroupActivation: GroupQC()}


def qc_for(layer) -> QuadraticConstraint:
    """The quadratic constraint for an activation layer (exact type match first, then subclasses)."""
    qc = QC_REGISTRY.get(type(layer))
    if qc is None:
        for cls, cand in QC_REGISTRY.items():
            if isinstance(layer, cls):
                qc = cand
                break
    if qc is None:
        raise UnsupportedLayerError(f"no quadratic constraint is known for {type(layer).__name__}")
    return qc


__all__ = ["QuadraticConstraint", "QCAtoms", "SlopeRestrictedQC", "GroupQC", "QC_REGISTRY", "qc_for",
           "MULTIPLIER_STRUCTURES", "dyadic_slopes"]
