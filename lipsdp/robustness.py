"""Certified robustness radii from Lipschitz bounds.

For a classifier f with logits f_1..f_K, predicted class i at input x and margins
m_j = f_i(x) - f_j(x) > 0 (j != i), let L_ij be an upper bound on the Lipschitz
constant of the logit difference g_ij = (e_i - e_j)^T f in the chosen input norm p:

    |g_ij(x') - g_ij(x)| <= L_ij ||x' - x||_p.

Then every x' with ||x' - x||_p < r := min_j m_j / L_ij keeps g_ij(x') > 0 for all j,
i.e. the prediction cannot change: r is a certified radius (l2 or l-infinity).

``mode="pairwise"`` bounds each logit difference separately (K - 1 SDPs, the
tightest); ``mode="global"`` uses one bound L on the whole output map, for which
|g_ij(x') - g_ij(x)| <= ||e_i - e_j||_q' ... concretely sqrt(2) L ||x' - x||_2 in l2
(since |(e_i - e_j)^T d| <= sqrt 2 ||d||_2) and 2 L ||x' - x||_inf in l-infinity
(the l-inf -> l-inf constant bounds each |d_k| by L ||x' - x||_inf).

The logits at x are evaluated in float64; the radius is certified up to that
evaluation's rounding (relative ~1e-15).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .api import estimate, normalize_norm
from .extract import extract

__all__ = ["certified_radius", "RadiusResult"]


@dataclass
class RadiusResult:
    """radius: certified radius (0 if misclassified or not certified); label: the class defended;
    margins: m_j per class (nan at the label); lipschitz: L_ij per class (nan at the label);
    limiting_class: the j attaining the minimum; results: the LipschitzResults used."""

    radius: float
    label: int
    norm: str
    margins: np.ndarray
    lipschitz: np.ndarray
    limiting_class: int | None
    certified: bool
    results: list = field(default_factory=list, repr=False)


def certified_radius(model, x, norm: str = "l2", label: int | None = None, mode: str = "pairwise",
                     method: str = "neuron", solver: str = "auto", input_shape=None, **options) -> RadiusResult:
    """The certified robustness radius of ``model`` at ``x`` (see module docstring).

    Args:
        model: torch module, ONNX path or lipsdp.Network (a classifier: outputs are logits).
        x: one input (any shape with the model's number of entries).
        norm: "l2" or "linf".
        label: the class to defend (default: the predicted class). If the model does not
            predict it at x, the radius is 0.
        mode: "pairwise" (one SDP per competing class) or "global" (one SDP for the whole output).
        method, solver, options: passed to :func:`lipsdp.estimate`.
    """
    norm = normalize_norm(norm)
    net = extract(model, input_shape=input_shape)
    xv = np.asarray(x, dtype=np.float64).reshape(-1)
    logits = net.forward(xv)
    k = logits.size
    pred = int(np.argmax(logits))
    label = pred if label is None else int(label)
    margins = np.full(k, np.nan)
    lips = np.full(k, np.nan)
    others = [j for j in range(k) if j != label]
    margins[others] = logits[label] - logits[others]
    if np.any(margins[others] <= 0):
        return RadiusResult(0.0, label, norm, margins, lips, None, True, [])
    results = []
    options.setdefault("lower", False)
    if mode == "pairwise":
        for j in others:
            c = np.zeros((1, k))
            c[0, label], c[0, j] = 1.0, -1.0
            r = estimate(net, norm=norm, method=method, solver=solver, output=c, **options)
            results.append(r)
            lips[j] = r.bound if r.certified else np.inf
    elif mode == "global":
        r = estimate(net, norm=norm, method=method, solver=solver, **options)
        results.append(r)
        factor = np.sqrt(2.0) if norm == "l2" else 2.0
        lips[others] = factor * r.bound if r.certified else np.inf
    else:
        raise ValueError(f"unknown mode {mode!r}; use 'pairwise' or 'global'")
    ratios = margins[others] / lips[others]
    idx = int(np.argmin(ratios))
    certified = all(r.certified for r in results)
    radius = float(ratios[idx]) if certified else 0.0
    return RadiusResult(radius, label, norm, margins, lips, others[idx], certified, results)
