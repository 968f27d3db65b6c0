"""LipSDP for networks with residual and implicit layers: the whole network in one LMI.

**Lowering.** A network of :class:`Affine`, activation (any layer with a registered QC),
:class:`Residual` (x -> P x + g(x), g any such sub-network) and :class:`Implicit`
(z = phi(W z + U x + b), y = C z + D x) layers has no loops outside implicit layers, so
walking it once expresses every pre-activation and the output as linear maps of the stacked
state xi = (dx^0, dphi_1, ..., dphi_m) (one block per activation layer; an implicit layer's
block is its dz):

* an affine layer composes: map <- W map (biases cancel in differences);
* an activation layer a records its pre-activation dv_a = map and restarts with map = xi_a;
* a residual block runs its branch on the same map and adds the skip: map <- P map + branch(map);
* an implicit layer records dv = U map + W xi_z (its own block) and continues with
  map <- C xi_z + D map.

Products are kept sparse where the factors are (convolutions). The LMI is then the signal
form of :mod:`lipsdp.sdp.assembly` (l2 and l-infinity exactly as for feedforward networks,
of which this is the generalisation); it proves ||dy||_2 <= sqrt(rho) ||dx||_2, resp.
|dy| <= rho ||dx||_inf for one output row. For the paper's residual networks
x^{k+1} = x^k + phi(W_k x^k) it is the LMI of Pauli et al. (2024) with the first and last
matrices inside the LMI instead of multiplied outside.

**Scaling.** Per-block powers of two (:func:`lipsdp.sdp.assembly.block_scales`): an exact
change of variables for any such network (a pre-activation is scaled with its own block, and
every term of a residual sum by its own exact ratio); an implicit layer's feedback W is
invariant.

**l2 input reduction.** dx^0 enters only through rho ||dx^0||^2 and the maps R_i dx^0 of the
pre-activations and output that read it; with R the stack of those maps and R = U S V^T
(thin SVD, singular values below 1e-12 sigma_max dropped), when R has rank r < n0 the solver
gets R_i V (same optimal value: the part of dx^0 in ker R only adds rho ||.||^2 >= 0; e.g.
r = n_1 when every path starts with x^1 = W_1 x^0). Certification uses the full LMI, so the
dropped directions cost nothing in soundness.

**Implicit layers.** Their block's self-term is Z_zz(lam) = [W; I]^T (-Q(lam)) [W; I], not
definite for arbitrary multipliers. Before anything is solved, well-posedness is proved
(:mod:`lipsdp.sdp.wellposed`; :class:`~lipsdp.errors.NotWellPosedError` otherwise) and its
multipliers become the block's ``interior_dir``, so :meth:`LMI.interior_point` (the
certifier's repair and fallback point) stays strictly feasible.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..constraints import qc_for
from ..errors import InfeasibleSDPError, NotWellPosedError, UnsupportedLayerError, UnsupportedNormError
from ..network.implicit import Implicit
from ..network.layers import Affine
from ..network.residual import Residual
from .assembly import ActivationSite, assemble, block_scales, scaled_maps, variable_scales
from .builders import LMIPair, register_builder

__all__ = ["Lowered", "lower", "build_dag", "is_activation_layer", "dag_supported"]

NORMS = ("l2", "linf")
_RANK_SEARCH_LIMIT = 1000  # input sizes up to which a tall stack of input maps is checked for rank deficiency


def is_activation_layer(layer) -> bool:
    """True for layers bounded by a registered quadratic constraint (elementwise or group activations)."""
    if isinstance(layer, (Affine, Residual, Implicit)):
        return False
    try:
        qc_for(layer)
    except UnsupportedLayerError:
        return False
    return True


def dag_supported(network) -> bool:
    """True if every layer (recursively) is affine, an activation with a QC, residual or implicit."""
    for layer in network.layers:
        if isinstance(layer, Affine):
            continue
        if isinstance(layer, Residual):
            if not dag_supported(layer.branch):
                return False
        elif isinstance(layer, Implicit):
            if not is_activation_layer(layer.activation):
                return False
        elif not is_activation_layer(layer):
            return False
    return True


def _mm(a, b):
    """a @ b, sparse when both are, dense otherwise."""
    if sp.issparse(a) and sp.issparse(b):
        return sp.csr_matrix(a @ b)
    out = a @ b
    return np.asarray(out.toarray() if sp.issparse(out) else out)


def _add(a, b):
    if sp.issparse(a) and sp.issparse(b):
        return sp.csr_matrix(a + b)
    a = a.toarray() if sp.issparse(a) else a
    b = b.toarray() if sp.issparse(b) else b
    return a + b


def _apply(w, lin: dict) -> dict:
    return {blk: _mm(w, m) for blk, m in lin.items()}


def _sum(a: dict, b: dict) -> dict:
    out = dict(a)
    for blk, m in b.items():
        out[blk] = _add(out[blk], m) if blk in out else m
    return out


class Lowered:
    """A network as activation sites and an output map over xi (see the module docstring).

    Attributes:
        n_input: size of the input block.
        sites: :class:`ActivationSite` per activation layer (block k = sites[k - 1]).
        out: xi block -> matrix, the output map.
        implicit: site index k (1-based block) -> the :class:`Implicit` layer it belongs to.
    """

    def __init__(self, network, c=None):
        self.n_input = network.in_dim
        self.sites: list = []
        self.implicit: dict = {}
        out = self._run(network.layers, {0: sp.identity(self.n_input, format="csr")})
        if c is not None:
            out = _apply(np.atleast_2d(np.asarray(c, dtype=np.float64)), out)
        self.out = out

    def _new_block(self, layer, pre: dict, name: str) -> int:
        self.sites.append(ActivationSite(layer, pre, name))
        return len(self.sites)

    def _run(self, layers, cur: dict) -> dict:
        for layer in layers:
            if isinstance(layer, Affine):
                cur = _apply(layer.weight, cur)
            elif isinstance(layer, Residual):
                branch = self._run(layer.branch.layers, cur)
                skip = cur if layer.skip is None else _apply(layer.skip.weight, cur)
                cur = _sum(skip, branch)
            elif isinstance(layer, Implicit):
                k = len(self.sites) + 1
                pre = _sum(_apply(layer.U, cur), {k: layer.W})
                self._new_block(layer.activation, pre, f"z{k} (implicit)")
                self.implicit[k] = layer
                out = {k: layer.C}
                if np.any(layer.D):
                    out = _sum(out, _apply(layer.D, cur))
                cur = out
            elif is_activation_layer(layer):
                k = self._new_block(layer, cur, "")
                cur = {k: sp.identity(layer.size, format="csr")}
            else:
                raise UnsupportedLayerError(f"{layer.describe()} has no LipSDP formulation")
        return cur


def lower(network, c=None) -> Lowered:
    """Lower ``c @ network`` (see :class:`Lowered`)."""
    return Lowered(network, c)


def _reduce_input(n_input: int, sites: list, out: dict):
    """The l2 input reduction (module docstring); None when it does not shrink the input."""
    reading = [s.pre[0] for s in sites if 0 in s.pre] + ([out[0]] if 0 in out else [])
    rows = sum(m.shape[0] for m in reading)
    if not reading or (rows >= n_input and n_input > _RANK_SEARCH_LIMIT):
        return None  # only rank deficiency could help, and the SVD would be costly
    r = sp.vstack([sp.csr_matrix(m) for m in reading]).toarray() if len(reading) > 1 else reading[0]
    r = r.toarray() if sp.issparse(r) else np.asarray(r)
    _, sv, vt = np.linalg.svd(r, full_matrices=False)
    keep = int(np.sum(sv > 1e-12 * sv[0])) if sv.size and sv[0] > 0 else 0
    if keep >= n_input or keep == 0:
        return None
    v = vt[:keep].T

    def red(m):
        return _mm(m, v)

    new_sites = [ActivationSite(s.layer, {b: (red(m) if b == 0 else m) for b, m in s.pre.items()}, s.name)
                 for s in sites]
    new_out = {b: (red(m) if b == 0 else m) for b, m in out.items()}
    return v.shape[1], new_sites, new_out


def _well_posed_directions(low: Lowered, method: str) -> dict:
    """Block -> multipliers proving (WP) with ``method``; raises before anything is solved."""
    dirs = {}
    for k, layer in low.implicit.items():
        layer.well_posedness("neuron")  # the model property (finest multipliers): NotWellPosedError
        try:
            dirs[k] = layer.well_posedness(method).multipliers
        except NotWellPosedError as exc:
            raise InfeasibleSDPError(
                f"{layer.describe()} is well-posed, but no '{method}' multipliers make its equilibrium block "
                f"Z_zz definite, so that LMI is infeasible; use method='neuron' "
                f"({getattr(exc, 'detail', exc)})"
            ) from exc
    return dirs


def build_dag(network, c=None, norm: str = "l2", method: str = "neuron", scale: bool = True,
              reduce_input: bool = True) -> LMIPair:
    """The LipSDP LMIs of ``c @ network`` for a network with residual and/or implicit layers.

    Args:
        network: a :class:`~lipsdp.network.Network` (see :func:`dag_supported`).
        c: output selection matrix or None.
        norm: "l2" or "linf" (linf needs a single output row).
        method: multiplier structure, "neuron" or "layer".
        scale: per-block power-of-two scaling (undone exactly).
        reduce_input: l2 only, the input reduction of the module docstring.

    Raises:
        NotWellPosedError: an implicit layer fails the well-posedness condition.
    """
    if norm not in NORMS:
        raise UnsupportedNormError(f"norm {norm!r} is not supported; use one of {NORMS}")
    low = lower(network, c)
    n_out = next(iter(low.out.values())).shape[0]
    if norm == "linf" and n_out != 1:
        raise UnsupportedNormError("the l-infinity LMI bounds one output row at a time; select a row with output=")
    dirs = _well_posed_directions(low, method)
    if scale:
        sigmas, sigma_out = block_scales(low.sites, low.out, norm)
    else:
        sigmas, sigma_out = [1.0] * (len(low.sites) + 1), 1.0
    sites, out = scaled_maps(low.sites, low.out, sigmas, sigma_out)

    def finish(lmi, reduced):
        lmi.scale = sigma_out
        lmi.var_scale = variable_scales(lmi, sigmas, sigma_out, norm)
        lmi.meta.update(norm=norm, method=method, block_scales=sigmas, output_scale=sigma_out,
                        reduced_input=reduced, implicit_blocks=sorted(dirs))
        first = lmi.meta["first_xi_block"]
        for k, lam in dirs.items():
            idx = lmi.variables_of_block(k + first)
            lmi.interior_dir[idx] = lam
        return lmi

    full = finish(assemble(low.n_input, sites, out, norm, method), False)
    solve = full
    if norm == "l2" and reduce_input:
        red = _reduce_input(low.n_input, sites, out)
        if red is not None:
            solve = finish(assemble(red[0], red[1], red[2], norm, method), True)
    return LMIPair(solve, full)


register_builder(
    "residual/implicit",
    lambda network: not network.is_feedforward and dag_supported(network),
    lambda network, c, norm, method: build_dag(network, c, norm=norm, method=method),
)
