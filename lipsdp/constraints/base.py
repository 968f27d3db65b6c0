"""The interface every quadratic constraint (QC) implements.

A QC describes, for one activation layer with n inputs v and n outputs phi(v),
a family of quadratic inequalities that hold for *all* pairs of inputs:

    [dv; dphi]^T Q(lam) [dv; dphi] >= 0,   Q(lam) = sum_a (P lam)_a Q_a,

with the multipliers lam constrained in sign (nonnegative or free). The SDP
builders place these atoms on the layer's signals; the certificate needs the
negated matrix -Q (the LMI is written Z >= 0), so a QC returns its atoms with
coefficient matrices ``K_a = -Q_a``.

Local signal numbering: index ``j`` (0 <= j < n) is dv_j, index ``n + j`` is
dphi_j. For activations that are not elementwise (GroupSort, Householder), the
same numbering is used; the QC decides which coordinates its atoms couple.

To add a QC: subclass :class:`QuadraticConstraint`, implement :meth:`atoms`,
and register the activation layer type in :data:`QC_REGISTRY` (see
``constraints/__init__.py``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ..sdp.lmi import AtomBlock

__all__ = ["QCAtoms", "QuadraticConstraint", "MULTIPLIER_STRUCTURES"]

MULTIPLIER_STRUCTURES = ("neuron", "layer")


@dataclass
class QCAtoms:
    """The atoms of one layer's QC, in local coordinates (see module docstring).

    Attributes:
        blocks: AtomBlocks with *local* supports (0..2n-1) and coefficients K = -Q.
        tying: (n_atoms x m_layer) sparse map from this layer's multipliers to atom weights.
        nonneg: (m_layer,) bool sign constraints.
        interior_dir: (m_layer,) weights used by the interior sweep (1 for the
            multipliers whose K has a positive-definite dphi-dphi part, 0 for free ones).
        names: (m_layer,) short names of the multiplier kinds (e.g. "lambda", "gamma").
    """

    blocks: list
    tying: sp.csr_matrix
    nonneg: np.ndarray
    interior_dir: np.ndarray
    names: list = field(default_factory=list)

    @property
    def n_vars(self) -> int:
        return int(self.tying.shape[1])


class QuadraticConstraint(ABC):
    """A sound QC for one kind of activation layer."""

    #: human-readable name used in results and errors
    name: str = "qc"

    @abstractmethod
    def atoms(self, layer, multipliers: str) -> QCAtoms:
        """The QC's atoms for ``layer`` with the given multiplier structure.

        Args:
            layer: the activation layer (its size and parameters).
            multipliers: "neuron" (finest sound structure) or "layer" (one per layer).
        """


