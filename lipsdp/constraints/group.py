"""Quadratic constraints of MaxMin, GroupSort and Householder activations (LipSDP-NSR).

Pauli et al., "Novel Quadratic Constraints for Extending LipSDP beyond Slope-Restricted
Activations", ICLR 2024. For one group with input difference da and output difference db
(g coordinates each):

* **norm inequality** (all kinds are 1-Lipschitz per group): ||da||^2 - ||db||^2 >= 0;
* **equality** da^T J da - db^T J db = 0 with J = 1 1^T for GroupSort/MaxMin (sorting keeps
  the sum: 1^T db = 1^T da) and, for Householder with vector v, J = (v^T v) I - v v^T
  (= (v^T v) Pi, Pi the projection onto v-perp; Pi db = Pi da because db - da is a multiple
  of v);
* **cross equalities** (optional): 2 da^T J (db - da) = 0 and 2 db^T J (da - db) = 0 (same
  reason: J (db - da) = 0).

Hence for all lambda_i >= 0 and free gamma_i, s_i, p_i

    [da; db]^T [[T - 2S, S + P], [S + P, -T - 2P]] [da; db] >= 0,
    T = lambda_i I + gamma_i J,  S = s_i J,  P = p_i J,

which is the paper's QC. lambda is ONE scalar per group: a per-coordinate diagonal inside a
group is not valid (sorting permutes coordinates). Groups are never coupled.

Multiplier structures: ``"neuron"`` = one (lambda, gamma[, s, p]) per group (the paper's
LipSDP-NSR); ``"layer"`` = one of each for the whole layer. The cross terms are off by
default (S = P = 0, as in the paper's experiments): set ``GroupQC.cross_terms = True`` (or
register ``GroupQC(cross_terms=True)``) for the tighter, worse-conditioned variant.

Sign convention: atoms carry K = -Q (the LMI is Z >= 0). The lambda atom's dphi-dphi block
is +I (positive definite), so lambda is the interior-point direction; the equality
multipliers are free with interior direction 0. All coefficients are exact in float64
(entries of 1 1^T are 1; the Householder v is stored on a dyadic grid, see
:mod:`lipsdp.network.group`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..network.group import GroupActivation
from ..sdp.lmi import AtomBlock
from .base import QCAtoms, QuadraticConstraint

__all__ = ["GroupQC", "equality_matrices"]


def equality_matrices(layer: GroupActivation) -> np.ndarray:
    """(G, g, g) matrices J_i of the equality constraints (exact in float64)."""
    g, n_g = layer.group_size, layer.n_groups
    if layer.kind != "householder":
        return np.ones((n_g, g, g))
    v = layer.vectors()
    sq = v * v
    j = -v[:, :, None] * v[:, None, :]
    diag = np.array([[np.sum(np.delete(sq[i], k)) for k in range(g)] for i in range(n_g)])
    j[:, np.arange(g), np.arange(g)] = diag
    return j


class GroupQC(QuadraticConstraint):
    """The LipSDP-NSR QC of a :class:`~lipsdp.network.group.GroupActivation` (module docstring)."""

    name = "group (NSR)"

    def __init__(self, cross_terms: bool = False):
        self.cross_terms = bool(cross_terms)

    def atoms(self, layer: GroupActivation, multipliers: str) -> QCAtoms:
        n, g, n_g = layer.size, layer.group_size, layer.n_groups
        idx = layer.groups()
        support = np.concatenate([idx, n + idx], axis=1)  # (G, 2g): da then db
        eye = np.eye(g)
        zero = np.zeros((g, g))
        jm = equality_matrices(layer)
        kinds = [("lambda", np.broadcast_to(np.block([[-eye, zero], [zero, eye]]), (n_g, 2 * g, 2 * g)), True, 1.0),
                 ("gamma", np.stack([np.block([[-j, zero], [zero, j]]) for j in jm]), False, 0.0)]
        if self.cross_terms:
            # -Q_s = [[2J, -J], [-J, 0]],  -Q_p = [[0, -J], [-J, 2J]]
            kinds.append(("s", np.stack([np.block([[2 * j, -j], [-j, zero]]) for j in jm]), False, 0.0))
            kinds.append(("p", np.stack([np.block([[zero, -j], [-j, 2 * j]]) for j in jm]), False, 0.0))
        blocks = [AtomBlock(support, np.ascontiguousarray(c)) for _, c, _, _ in kinds]
        n_k = len(kinds)
        if multipliers == "neuron":
            tying = sp.identity(n_k * n_g, format="csr")
            nonneg = np.repeat([nn for _, _, nn, _ in kinds], n_g)
            interior = np.repeat([d for _, _, _, d in kinds], n_g)
            names = [name for name, _, _, _ in kinds for _ in range(n_g)]
        elif multipliers == "layer":
            rows = np.arange(n_k * n_g)
            tying = sp.csr_matrix((np.ones(n_k * n_g), (rows, rows // n_g)), shape=(n_k * n_g, n_k))
            nonneg = np.array([nn for _, _, nn, _ in kinds])
            interior = np.array([d for _, _, _, d in kinds])
            names = [name for name, _, _, _ in kinds]
        else:
            raise ValueError(f"unknown multiplier structure {multipliers!r} (use 'neuron' or 'layer')")
        return QCAtoms(blocks, tying, np.asarray(nonneg, dtype=bool), np.asarray(interior, dtype=float), names)
