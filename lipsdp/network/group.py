"""Group activations: MaxMin, GroupSort and Householder (Pauli et al., ICLR 2024).

These act on disjoint *groups* of g neurons and are not elementwise, so the slope-restricted
QC does not apply; their QC is :class:`lipsdp.constraints.group.GroupQC`.

**Groups** (``grouping``), for a layer of n = G g neurons:

* ``"consecutive"``: group i is neurons (i g, ..., i g + g - 1) (adjacent pairs for g = 2):
  deel-torchlip ``GroupSort``/``GroupSort2``, monotonicnetworks ``GroupSort`` (with
  g = n / n_groups), the paper's MaxMin networks in ``../shared/paper-weights``;
* ``"halves"`` (strided): group i is neurons (i, i + G, i + 2G, ...) (for g = 2 the first half
  against the second half): deel-torchlip ``HouseHolder``, Anil et al.'s MaxMin.

**Kinds.**

* ``"groupsort"``: each group is sorted; ``descending=False`` (default, like ``torch.sort``,
  deel-torchlip and monotonicnetworks) puts the minimum first, ``descending=True`` the maximum.
* ``"maxmin"``: GroupSort with g = 2 and, by default, ``descending=True``:
  (v1, v2) -> (max, min) as in Anil et al. and the paper.  MaxMin = GroupSort(2) = Householder
  with v = (1, -1)/sqrt(2).
* ``"householder"``: phi(z) = z if v^T z > 0, else H z with H = I - 2 v v^T / (v^T v), per group
  (v need not be unit: the reflection normalises it). ``v`` is one vector of length g for all
  groups or a (G, g) array, one per group (deel-torchlip learns one angle per pair:
  v = (-sin(theta/2), cos(theta/2))). v is rounded once onto a dyadic grid of 2^-b max|v_i|
  (b = 26 for g = 2, so float32 vectors are kept exactly) so that the QC coefficients
  (v^T v) I - v v^T are exact in float64; the layer *is* the reflection with that v.

**Jacobian.** Given the input, each group's Jacobian is a permutation (sorting) or I / H
(Householder); :meth:`jvp` / :meth:`vjp` apply it (ties: any consistent choice, the function
is continuous and piecewise linear).

**Lipschitz constants.** All kinds are 1-Lipschitz in l2 per group (sorting is, the
reflection is orthogonal and the map continuous piecewise linear), hence for the layer.
In l-infinity: a continuous piecewise-linear map is Lipschitz with the largest induced norm of
its pieces' Jacobians (along any segment the chord is an average of those Jacobians applied
to the direction). For GroupSort/MaxMin the pieces are permutations (||P||_inf = 1), so the
constant is 1; for Householder it is max(1, max_i ||H_i||_inf) (e.g. sqrt 2 for v at 22.5
degrees), rounded up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidNetworkError
from .layers import ActivationLayer

__all__ = ["GroupActivation", "max_min", "group_sort", "householder", "KINDS", "GROUPINGS", "dyadic_vector"]

KINDS = ("maxmin", "groupsort", "householder")
GROUPINGS = ("consecutive", "halves")


def dyadic_vector(v: np.ndarray, bits: int) -> np.ndarray:
    """Round each row of v to the grid 2^(e - bits), 2^e > max|row| (products of entries exact)."""
    v = np.atleast_2d(np.asarray(v, dtype=np.float64))
    out = np.empty_like(v)
    for i, row in enumerate(v):
        mag = float(np.max(np.abs(row))) if row.size else 0.0
        if not (mag > 0 and math.isfinite(mag)):
            out[i] = row
            continue
        s = math.ldexp(1.0, math.frexp(mag)[1] - bits)
        out[i] = np.round(row / s) * s
    return out


def _householder_bits(g: int) -> int:
    # integers |V_i| <= 2^b: products <= 2^(2b), sums of g - 1 of them < 2^53
    return max(8, (53 - max(1, math.ceil(math.log2(max(g - 1, 1)))) - 1) // 2) if g > 2 else 26


@dataclass(eq=False)
class GroupActivation(ActivationLayer):
    """A MaxMin / GroupSort / Householder activation on ``size`` neurons (see module docstring)."""

    kind: str
    size: int
    group_size: int = 2
    grouping: str = "consecutive"
    descending: bool | None = None
    v: np.ndarray | None = field(default=None, repr=False)
    name: str = ""

    def __post_init__(self):
        self.kind = str(self.kind).lower()
        if self.kind == "maxmin" and self.descending is None:
            self.descending = True
        if self.descending is None:
            self.descending = False
        self.size = int(self.size)
        self.group_size = int(self.group_size)
        self._v = None
        if self.kind == "householder" and self.v is not None:
            v = np.asarray(self.v, dtype=np.float64)
            if v.ndim == 1:
                v = v[None, :]
            if v.ndim == 2 and v.shape[1] == self.group_size and np.all(np.isfinite(v)):
                self._v = dyadic_vector(v, _householder_bits(self.group_size))
            self.v = v

    # ------------------------------------------------------------------ structure
    @property
    def in_dim(self) -> int:
        return self.size

    @property
    def out_dim(self) -> int:
        return self.size

    @property
    def n_groups(self) -> int:
        return self.size // self.group_size

    def groups(self) -> np.ndarray:
        """(G, g) neuron indices of each group (see ``grouping``)."""
        n, g = self.size, self.group_size
        idx = np.arange(n)
        if self.grouping == "consecutive":
            return idx.reshape(n // g, g)
        return idx.reshape(g, n // g).T.copy()

    def vectors(self) -> np.ndarray:
        """(G, g) Householder vectors (rounded, see module docstring); (1, -1) for MaxMin."""
        if self.kind != "householder":
            return np.tile(np.array([1.0, -1.0]), (self.n_groups, 1))
        v = self._v
        return np.broadcast_to(v, (self.n_groups, self.group_size)) if v.shape[0] == 1 else v

    def check(self, where: str) -> None:
        if self.kind not in KINDS:
            raise InvalidNetworkError(f"{where}: unknown group activation kind {self.kind!r} (use one of {KINDS})")
        if self.grouping not in GROUPINGS:
            raise InvalidNetworkError(f"{where}: unknown grouping {self.grouping!r} (use one of {GROUPINGS})")
        if self.group_size < 2:
            raise InvalidNetworkError(f"{where}: group size must be at least 2, got {self.group_size}")
        if self.kind == "maxmin" and self.group_size != 2:
            raise InvalidNetworkError(f"{where}: MaxMin has group size 2, got {self.group_size}")
        if self.size <= 0 or self.size % self.group_size:
            raise InvalidNetworkError(
                f"{where}: {self.kind} needs a size divisible by the group size {self.group_size}, got {self.size}")
        if self.kind == "householder":
            if self.v is None:
                raise InvalidNetworkError(f"{where}: Householder activation needs a vector v")
            v = np.asarray(self.v)
            if v.ndim != 2 or v.shape[1] != self.group_size or v.shape[0] not in (1, self.n_groups):
                raise InvalidNetworkError(
                    f"{where}: Householder v must have shape ({self.group_size},) or ({self.n_groups}, "
                    f"{self.group_size}), got {np.asarray(self.v).shape}")
            if not np.all(np.isfinite(v)):
                raise InvalidNetworkError(f"{where}: Householder v has NaN or infinite entries")
            if np.any(np.sum(self._v * self._v, axis=1) == 0):
                raise InvalidNetworkError(f"{where}: Householder v must be nonzero")

    def describe(self) -> str:
        if self.kind == "maxmin":
            base = "MaxMin"
        elif self.kind == "groupsort":
            base = f"GroupSort[{self.group_size}]"
        else:
            base = f"Householder[{self.group_size}]"
        return f"{base}({self.size}, {self.grouping})"

    # ------------------------------------------------------------------ evaluation
    def _perm(self, xs: np.ndarray) -> np.ndarray:
        """Per-group sorting permutation (batch, G, g): output slot k takes input slot perm[k]."""
        p = np.argsort(xs, axis=-1, kind="stable")
        return p[..., ::-1] if self.descending else p

    def _reflect_mask(self, xs: np.ndarray) -> np.ndarray:
        """(batch, G) True where the group is reflected (v^T z <= 0)."""
        return np.einsum("bgi,gi->bg", xs, self.vectors()) <= 0

    def _apply(self, x: np.ndarray, d: np.ndarray) -> np.ndarray:
        """J(x) d."""
        idx = self.groups()
        xs, ds = x[:, idx], d[:, idx]
        if self.kind == "householder":
            v = self.vectors()
            vv = np.sum(v * v, axis=1)
            refl = ds - 2.0 * v[None] * (np.einsum("bgi,gi->bg", ds, v) / vv)[..., None]
            outs = np.where(self._reflect_mask(xs)[..., None], refl, ds)
        else:
            outs = np.take_along_axis(ds, self._perm(xs), axis=-1)
        out = np.empty_like(d)
        out[:, idx] = outs
        return out

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return self._apply(x, x)

    def jvp(self, x: np.ndarray, d: np.ndarray) -> np.ndarray:
        return self._apply(np.asarray(x, dtype=np.float64), np.asarray(d, dtype=np.float64))

    def vjp(self, x: np.ndarray, g: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        g = np.asarray(g, dtype=np.float64)
        idx = self.groups()
        xs, gs = x[:, idx], g[:, idx]
        if self.kind == "householder":  # H symmetric
            v = self.vectors()
            vv = np.sum(v * v, axis=1)
            refl = gs - 2.0 * v[None] * (np.einsum("bgi,gi->bg", gs, v) / vv)[..., None]
            ins = np.where(self._reflect_mask(xs)[..., None], refl, gs)
        else:
            ins = np.zeros_like(gs)
            np.put_along_axis(ins, self._perm(xs), gs, axis=-1)
        out = np.empty_like(g)
        out[:, idx] = ins
        return out

    # ------------------------------------------------------------------ Lipschitz
    @property
    def lipschitz(self) -> float:
        return 1.0

    def lipschitz_in(self, norm: str = "l2") -> float:
        """1 in l2; in l-infinity 1 for sorting, max(1, max ||H_i||_inf) (rounded up) for Householder."""
        if norm == "l2" or self.kind != "householder":
            return 1.0
        v = self.vectors()
        vv = np.sum(v * v, axis=1)
        h = np.eye(self.group_size)[None] - 2.0 * v[:, :, None] * v[:, None, :] / vv[:, None, None]
        worst = float(np.max(np.sum(np.abs(h), axis=2)))
        return max(1.0, worst * (1.0 + 1e-12))


def max_min(size: int, grouping: str = "consecutive", descending: bool = True, name: str = "") -> GroupActivation:
    """MaxMin on ``size`` neurons: each pair -> (max, min) (``descending=False``: (min, max))."""
    return GroupActivation("maxmin", size, 2, grouping, descending, name=name)


def group_sort(size: int, group_size: int, grouping: str = "consecutive", descending: bool = False,
               name: str = "") -> GroupActivation:
    """GroupSort with groups of ``group_size`` sorted ascending (``descending=True``: max first)."""
    return GroupActivation("groupsort", size, group_size, grouping, descending, name=name)


def householder(size: int, v, grouping: str = "consecutive", name: str = "") -> GroupActivation:
    """Householder activation with vector(s) v (length g, or one row per group)."""
    v = np.asarray(v, dtype=np.float64)
    g = v.shape[-1]
    return GroupActivation("householder", size, g, grouping, None, v, name=name)


# ---------------------------------------------------------------------- the residual-ReLU rewrite
def residual_relu_layer(layer: GroupActivation):
    """The same function as a residual ReLU block x -> A x + B ReLU(D x) (LipSDP-RR baseline).

    * MaxMin / GroupSort with g = 2, pair (v1, v2) (v1 first in its group): the paper's form
      min = v2 - ReLU(v2 - v1), max = v2 + ReLU(v1 - v2) (two ReLUs per pair);
    * Householder (any g): z + 2 v ReLU(-v^T z) / (v^T v) per group (one ReLU per group).

    GroupSort with g > 2 has no such form: UnsupportedLayerError.
    """
    from ..errors import UnsupportedLayerError
    from . import activations
    from .layers import Activation, Affine
    from .network import Network
    from .residual import Residual

    n = layer.size
    idx = layer.groups()
    if layer.kind == "householder":
        v = layer.vectors()
        n_g = layer.n_groups
        d = np.zeros((n_g, n))
        b = np.zeros((n, n_g))
        vv = np.sum(v * v, axis=1)
        for i, grp in enumerate(idx):
            d[i, grp] = -v[i]
            b[grp, i] = 2.0 * v[i] / vv[i]
        a = None
        width = n_g
    elif layer.group_size == 2:
        d = np.zeros((n, n))
        b = np.zeros((n, n))
        a = np.zeros((n, n))
        for k, (i, j) in enumerate(idx):
            hi, lo = (i, j) if layer.descending else (j, i)  # output slots of max and min
            d[2 * k, [i, j]] = [-1.0, 1.0]   # r1 = ReLU(v2 - v1)
            d[2 * k + 1, [i, j]] = [1.0, -1.0]  # r2 = ReLU(v1 - v2)
            a[hi, j] = a[lo, j] = 1.0
            b[lo, 2 * k] = -1.0
            b[hi, 2 * k + 1] = 1.0
        width = n
    else:
        raise UnsupportedLayerError(
            f"{layer.describe()}: GroupSort with groups of {layer.group_size} has no residual-ReLU form "
            "(only MaxMin / group size 2 and Householder)")
    branch = Network([Affine(d), Activation(activations.relu(), width, name=f"{layer.name}.relu"), Affine(b)])
    return Residual(branch, None if a is None else Affine(a), name=f"{layer.name}(residual-relu)")


def residual_relu_rewrite(network):
    """``network`` with every group activation replaced by :func:`residual_relu_layer` (same function)."""
    from ..errors import UnsupportedLayerError
    from .implicit import Implicit
    from .network import Network
    from .residual import Residual

    def walk(net):
        out = []
        for i, layer in enumerate(net.layers):
            if isinstance(layer, GroupActivation):
                out.append(residual_relu_layer(layer))
            elif isinstance(layer, Residual):
                out.append(Residual(walk(layer.branch), layer.skip, name=layer.name))
            elif isinstance(layer, Implicit) and isinstance(layer.activation, GroupActivation):
                raise UnsupportedLayerError(f"layer {i} ({layer.describe()}): the residual-ReLU rewrite does not "
                                            "apply to implicit layers")
            else:
                out.append(layer)
        return Network(out, input_shape=net.input_shape, name=net.name)

    return walk(network)
