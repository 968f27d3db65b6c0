"""One representation for every LipSDP linear matrix inequality.

Every LMI this library builds (feedforward, residual, implicit; l2 and l-infinity;
slope-restricted and LipSDP-NSR constraints) has the form

    Z(y) = G^T Psi(y) G  >=  0            (positive semidefinite, size N x N)

    Psi(y) = Psi_0 + sum_a w_a K_a,        w = P y

where

* ``xi`` in R^N stacks the state differences the proof quantifies over (for a
  feedforward l2 LipSDP: dx^0, dx^1, ..., dx^l);
* the rows of the sparse matrix ``G`` (R x N) are *signals*, linear functions of
  xi: input coordinates, pre-activations v = W x, post-activations, outputs;
* an *atom* ``a`` is a small symmetric matrix ``K_a`` on a few signals
  (``support[a]``), e.g. one neuron's slope-restricted quadratic constraint on
  (dv_j, dphi_j); ``Psi_0`` is made of constant atoms (weight 1), e.g. the
  output term -||W_l dx^l||^2;
* ``y`` are the decision variables: ``y[0] = rho`` and the QC multipliers; the
  sparse *tying* matrix ``P`` maps them to atom weights (identity for
  LipSDP-Neuron, one shared column per layer for LipSDP-Layer).

Sign convention: Z(y) >= 0 (PSD) is the certificate. It is the negative of the
"<= 0" form in Fazlyab et al.: Z = -M. A slope-restricted neuron therefore
contributes lambda * [[2 alpha beta, -(alpha+beta)], [-(alpha+beta), 2]] on its
(dv, dphi) signals.

Structure the certifier and the solvers rely on (checked on construction):

* rho enters only as ``rho * rho_coeff * I`` on the first block of xi (the
  *rho block*: the input block for l2, a single auxiliary coordinate for
  l-infinity), and the objective is to minimise rho;
* xi is partitioned into blocks (layers); each multiplier is *owned* by a block
  (the block of the post-activations its QC constrains) and touches only that
  block and earlier ones, which makes the backward sweep of
  :meth:`LMI.interior_point` produce a strictly feasible point.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import math

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

__all__ = ["AtomBlock", "LMI", "concat_atoms", "exact_rho"]


@dataclass
class AtomBlock:
    """A batch of atoms with a common support size s.

    Attributes:
        support: (na, s) int array of signal indices (global, into the rows of G).
        coeff: (na, s, s) float64 array, each symmetric.
    """

    support: np.ndarray
    coeff: np.ndarray

    def __post_init__(self):
        self.support = np.asarray(self.support, dtype=np.int64)
        self.coeff = np.asarray(self.coeff, dtype=np.float64)
        if self.support.ndim != 2 or self.coeff.shape != self.support.shape + (self.support.shape[1],):
            raise ValueError(f"atom block shapes do not match: support {self.support.shape}, coeff {self.coeff.shape}")

    @property
    def count(self) -> int:
        return int(self.support.shape[0])

    @property
    def size(self) -> int:
        return int(self.support.shape[1])

    def shifted(self, offset_map) -> "AtomBlock":
        """The same atoms with support mapped through ``offset_map`` (array or callable)."""
        sup = offset_map(self.support) if callable(offset_map) else np.asarray(offset_map)[self.support]
        return AtomBlock(sup, self.coeff)

    def psi(self, weights: np.ndarray, n_signals: int) -> sp.csr_matrix:
        """sum_a weights[a] * K_a embedded in an (n_signals x n_signals) sparse matrix."""
        s = self.size
        rows = np.repeat(self.support, s, axis=1).ravel()
        cols = np.tile(self.support, (1, s)).ravel()
        vals = (self.coeff * np.asarray(weights, dtype=np.float64)[:, None, None]).ravel()
        keep = vals != 0
        return sp.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=(n_signals, n_signals))


def concat_atoms(blocks: list[AtomBlock]) -> list[AtomBlock]:
    """Merge blocks of equal support size (keeps atom order within a size class stable)."""
    by_size: dict[int, list[AtomBlock]] = {}
    for b in blocks:
        if b.count:
            by_size.setdefault(b.size, []).append(b)
    return [
        AtomBlock(np.concatenate([b.support for b in bs]), np.concatenate([b.coeff for b in bs]))
        for _, bs in sorted(by_size.items())
    ]


@dataclass
class MultiplierGroup:
    """A named slice of y, for reporting (e.g. 'layer 2 lambda')."""

    name: str
    start: int
    stop: int


@dataclass
class LMI:
    """Z(y) = G^T (Psi_0 + sum_a (P y)_a K_a) G >= 0; see the module docstring.

    Attributes:
        G: (R x N) sparse signal matrix (CSR).
        blocks: list of (start, stop) ranges partitioning 0..N; blocks[0] is the rho block.
        block_names: names of the blocks (for messages).
        atoms: list of AtomBlock (variable atoms), in atom order a = 0..n_atoms-1.
        constant_atoms: list of AtomBlock with weight 1 (Psi_0).
        tying: (n_atoms x m) sparse matrix P.
        nonneg: (m,) bool, True where y_i >= 0 is required.
        owner: (m,) int block index owning each multiplier (0 for rho).
        interior_dir: (m,) float, the direction the interior sweep scales per block.
        rho_coeff: the coefficient e with which rho enters: rho * e * I on the rho block.
        bound_kind: "sqrt" (bound = scale * sqrt(rho), l2) or "linear" (bound = scale * rho).
        scale: exact power of two by which the bound of this (scaled) LMI is multiplied.
        groups: multiplier groups for reporting.
        meta: free-form information (norm, method, widths...).
        var_scale: (m,) powers of two mapping this LMI's variables to those of the unscaled
            network's LMI (y_original = var_scale * y, exact); None means all ones.
    """

    G: sp.csr_matrix
    blocks: list
    block_names: list
    atoms: list
    constant_atoms: list
    tying: sp.csr_matrix
    nonneg: np.ndarray
    owner: np.ndarray
    interior_dir: np.ndarray
    rho_coeff: float
    bound_kind: str
    scale: float = 1.0
    groups: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    var_scale: np.ndarray | None = None

    def __post_init__(self):
        self.G = sp.csr_matrix(self.G, dtype=np.float64)
        self.tying = sp.csr_matrix(self.tying, dtype=np.float64)
        self.nonneg = np.asarray(self.nonneg, dtype=bool)
        self.owner = np.asarray(self.owner, dtype=np.int64)
        self.interior_dir = np.asarray(self.interior_dir, dtype=np.float64)
        m = self.n_vars
        n_atoms = sum(b.count for b in self.atoms)
        if self.tying.shape != (n_atoms, m):
            raise ValueError(f"tying matrix is {self.tying.shape}, expected ({n_atoms}, {m})")
        if not (self.nonneg.shape == self.owner.shape == self.interior_dir.shape == (m,)):
            raise ValueError("nonneg/owner/interior_dir must all have one entry per variable")
        if self.bound_kind not in ("sqrt", "linear"):
            raise ValueError(f"bound_kind must be 'sqrt' or 'linear', got {self.bound_kind!r}")
        if self.blocks[0][0] != 0 or self.blocks[-1][1] != self.size:
            raise ValueError("blocks must partition 0..N")

    # ------------------------------------------------------------------ sizes
    @property
    def size(self) -> int:
        """N, the order of the LMI."""
        return int(self.G.shape[1])

    @property
    def n_signals(self) -> int:
        return int(self.G.shape[0])

    @property
    def n_vars(self) -> int:
        """m = 1 + number of multipliers."""
        return int(self.tying.shape[1])

    @property
    def rho_block(self) -> slice:
        return slice(*self.blocks[0])

    # ------------------------------------------------------------------ evaluation
    def atom_weights(self, y: np.ndarray) -> np.ndarray:
        return self.tying @ np.asarray(y, dtype=np.float64)

    def psi(self, y: np.ndarray, constant: bool = True) -> sp.csr_matrix:
        """Psi(y) in signal space (R x R, sparse)."""
        w = self.atom_weights(y)
        out = sp.csr_matrix((self.n_signals, self.n_signals))
        start = 0
        for b in self.atoms:
            out = out + b.psi(w[start:start + b.count], self.n_signals)
            start += b.count
        if constant:
            for b in self.constant_atoms:
                out = out + b.psi(np.ones(b.count), self.n_signals)
        return out.tocsr()

    def matrix(self, y: np.ndarray, constant: bool = True, dense: bool = True):
        """Z(y) = G^T Psi(y) G (dense float64 by default)."""
        z = (self.G.T @ (self.psi(y, constant) @ self.G)).tocsr()
        return z.toarray() if dense else z

    def abs_matrix(self, y: np.ndarray, dense: bool = True):
        """|G|^T |Psi(y)| |G|, the magnitude matrix bounding rounding errors of :meth:`matrix`."""
        w = np.abs(self.atom_weights(y))
        ag = abs(self.G)
        out = sp.csr_matrix((self.n_signals, self.n_signals))
        start = 0
        for b in self.atoms:
            out = out + AtomBlock(b.support, np.abs(b.coeff)).psi(w[start:start + b.count], self.n_signals)
            start += b.count
        for b in self.constant_atoms:
            out = out + AtomBlock(b.support, np.abs(b.coeff)).psi(np.ones(b.count), self.n_signals)
        z = (ag.T @ (out @ ag)).tocsr()
        return z.toarray() if dense else z

    def rounding_depth(self) -> int:
        """k such that each entry of fl(Z(y)) is within gamma_k * (|G|^T |Psi| |G|) of the exact one.

        :meth:`matrix` forms Psi (each entry a sum of at most ``overlap`` products
        w_a * K_a), then Psi @ G (inner length <= max row nnz of Psi), then G^T @ (.)
        (inner length <= max column nnz of G). The standard bound for a product of
        matrices computed with inner sums of those lengths, in any order, gives
        gamma_k with k = overlap + row_nnz(Psi) + col_nnz(G) + 4 (the 4 covers the
        multiplications in w = P y and the products of three factors).
        """
        ones = [AtomBlock(b.support, (b.coeff != 0).astype(float)) for b in self.atoms + self.constant_atoms]
        count = sp.csr_matrix((self.n_signals, self.n_signals))
        for b in ones:
            count = count + b.psi(np.ones(b.count), self.n_signals)
        overlap = int(count.max()) if count.nnz else 0
        psi_row = int(count.getnnz(axis=1).max()) if count.nnz else 0
        g_col = int(self.G.getnnz(axis=0).max()) if self.G.nnz else 0
        tying_row = int(self.tying.getnnz(axis=1).max()) if self.tying.nnz else 0
        return overlap + psi_row + g_col + tying_row + 4

    # ------------------------------------------------------------------ bases for generic solvers
    def basis(self):
        """Sparse basis of Z: vec(Z(y)) = F @ y + f0 (row-major vec, N*N rows).

        Column i of F is vec(sum_a P[a, i] G_a^T K_a G_a). Built atom by atom from the
        signal rows, never through dense N x N intermediates.
        """
        n = self.size
        f_atoms = self._atom_basis(self.atoms)
        f = (f_atoms @ self.tying).tocsc()
        if self.constant_atoms:
            f0 = np.asarray(self._atom_basis(self.constant_atoms).sum(axis=1)).ravel()
        else:
            f0 = np.zeros(n * n)
        return f, f0

    def _atom_basis(self, blocks) -> sp.csc_matrix:
        n = self.size
        g = self.G.tocsr()
        rows_all, cols_all, vals_all = [], [], []
        col0 = 0
        indptr, indices, data = g.indptr, g.indices, g.data
        for b in blocks:
            s = b.size
            for p in range(s):
                for q in range(s):
                    kv = b.coeff[:, p, q]
                    nz = np.nonzero(kv)[0]
                    if nz.size == 0:
                        continue
                    rp = b.support[nz, p]
                    rq = b.support[nz, q]
                    lp = indptr[rp + 1] - indptr[rp]
                    lq = indptr[rq + 1] - indptr[rq]
                    cnt = lp * lq
                    if cnt.sum() == 0:
                        continue
                    atom_idx = np.repeat(nz, cnt)
                    # enumerate all (entry of row rp) x (entry of row rq) pairs
                    ip = _ragged_arange(indptr[rp], lp)
                    iq = _ragged_arange(indptr[rq], lq)
                    # outer products per atom: for atom t, pairs ip_t x iq_t
                    pi, qi = _ragged_outer(ip, lp, iq, lq)
                    vals = data[pi] * data[qi] * np.repeat(kv[nz], cnt)
                    rows_all.append(indices[pi].astype(np.int64) * n + indices[qi])
                    cols_all.append(col0 + atom_idx)
                    vals_all.append(vals)
            col0 += b.count
        if rows_all:
            r = np.concatenate(rows_all)
            c = np.concatenate(cols_all)
            v = np.concatenate(vals_all)
        else:
            r = c = np.zeros(0, dtype=np.int64)
            v = np.zeros(0)
        return sp.csc_matrix((v, (r, c)), shape=(n * n, col0))

    # ------------------------------------------------------------------ structure helpers
    def variables_of_block(self, k: int) -> np.ndarray:
        return np.nonzero(self.owner == k)[0]

    def interior_point(self, margin: float = 0.5, rescale: bool = True) -> np.ndarray:
        """A strictly feasible y (Z(y) > 0) by a backward sweep over the blocks.

        Multipliers owned by block k are set to t_k * interior_dir; going from the
        last block to block 1, t_k is twice the smallest value making the current
        Schur complement's diagonal block k positive definite, and block k is then
        eliminated. Finally rho is chosen to make the rho block positive definite with
        the same relative margin. With ``rescale`` the multipliers are then scaled by the best
        power of two (:meth:`_rescale_interior`). Dense linear algebra: O(N^3).

        Raises:
            ArithmeticError: if some block's owned multipliers do not make it definite
                (the LMI family has no interior along this direction).
        """
        m = self.n_vars
        y = np.zeros(m)
        z = self.matrix(y, constant=True)  # constant part (e.g. -W_l^T W_l)
        nb = len(self.blocks)
        unit_cache = {}
        for k in range(nb - 1, 0, -1):
            idx = self.variables_of_block(k)
            d = np.zeros(m)
            d[idx] = self.interior_dir[idx]
            lo, hi = self.blocks[k]
            bmat = self.matrix(d, constant=False)[: hi, : hi]
            unit_cache[k] = d
            bkk = bmat[lo:hi, lo:hi]
            ckk = z[lo:hi, lo:hi]
            try:
                lb = np.linalg.cholesky(bkk)
            except np.linalg.LinAlgError as exc:
                raise ArithmeticError(f"block '{self.block_names[k]}' has no definite self-term") from exc
            # generalized eigenvalue: largest mu with det(-C - mu B) = 0  ->  eig of L^-1 (-C) L^-T
            li = sla.solve_triangular(lb, np.eye(hi - lo), lower=True)
            mu = float(np.linalg.eigvalsh(li @ (-ckk) @ li.T)[-1])
            scale_ref = max(1.0, float(np.abs(ckk).max()) if ckk.size else 1.0)
            t = mu / (1.0 - margin) if mu > 0 else 1e-3 * scale_ref
            y[idx] += t * self.interior_dir[idx]
            z[:hi, :hi] += t * bmat
            # eliminate block k from the leading part
            xkk = z[lo:hi, lo:hi]
            ck = np.linalg.cholesky(0.5 * (xkk + xkk.T))
            v = sla.solve_triangular(ck, z[lo:hi, :lo], lower=True)
            z[:lo, :lo] -= v.T @ v
        lo, hi = self.blocks[0]
        head = z[lo:hi, lo:hi]
        # rho * e * I + head > 0: rho = (-lambda_min(head) + margin) / e
        lam_min = float(np.linalg.eigvalsh(0.5 * (head + head.T))[0])
        y[0] = (max(-lam_min, 0.0) * (1.0 + margin) + 1e-9) / self.rho_coeff
        return self._rescale_interior(y, margin) if rescale else y

    def _rescale_interior(self, y: np.ndarray, margin: float) -> np.ndarray:
        """Best power-of-two scaling s of the multipliers of a strictly feasible y (rho re-optimised).

        Z is affine, not homogeneous, in the multipliers (constant terms such as -W_l^T W_l, and
        for l-infinity rho enters one 1x1 block while the input multipliers enter the objective),
        so the sweep's arbitrary scale can cost orders of magnitude in rho on deep nets (ACAS Xu,
        l-infinity: 3.6e11 -> 4.7e6). The multipliers' block S stays definite along the search
        (checked by Cholesky), and rho is the exact minimum for the scaled multipliers, widened by
        the same relative margin. Returns ``y`` unchanged if no scale is better or checks fail.
        """
        def rho_of(scale):
            yy = np.array(y, copy=True)
            yy[1:] *= scale
            return exact_rho(self, yy)[0], yy

        base, _ = rho_of(1.0)
        if base is None:
            return y
        best_rho, best_scale = base, 1.0
        for e in range(-40, 41, 8):  # coarse grid of exponents
            r, _ = rho_of(2.0 ** e) if e else (base, None)
            if r is not None and r < best_rho:
                best_rho, best_scale = r, 2.0 ** e
        for step in (4, 2, 1):  # then halve the step around the best (rho is unimodal in practice)
            e0 = int(round(math.log2(best_scale)))
            for e in (e0 - step, e0 + step):
                r, _ = rho_of(2.0 ** e)
                if r is not None and r < best_rho:
                    best_rho, best_scale = r, 2.0 ** e
        if best_scale == 1.0 or not best_rho < 0.99 * base:
            return y
        _, yy = rho_of(best_scale)
        yy[0] = max(best_rho, 0.0) * (1.0 + margin) + 1e-9 / self.rho_coeff
        try:
            np.linalg.cholesky(self.matrix(yy))
        except np.linalg.LinAlgError:
            return y
        return yy

    def bound_from_rho(self, rho: float) -> float:
        """The Lipschitz bound of the *original* network for this rho (no rounding control)."""
        rho = max(float(rho), 0.0)
        base = np.sqrt(rho) if self.bound_kind == "sqrt" else rho
        return float(base * self.scale)

    def multipliers(self, y: np.ndarray) -> dict:
        """Named slices of y mapped to the unscaled network's LMI (exact: powers of two)."""
        y = np.asarray(y, dtype=np.float64)
        if self.var_scale is not None:
            y = y * self.var_scale
        out = {"rho": float(y[0])}
        for g in self.groups:
            out[g.name] = y[g.start:g.stop].copy()
        return out


def _ragged_arange(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + l) for each (s, l)."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offs = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + (np.arange(total) - offs)


def _ragged_outer(ip, lp, iq, lq):
    """For each group t, all pairs (ip_t[i], iq_t[j]); groups given by ragged arrays."""
    cnt = lp * lq
    total = int(cnt.sum())
    gp = np.cumsum(lp) - lp
    gq = np.cumsum(lq) - lq
    grp = np.repeat(np.arange(lp.size), cnt)
    local = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    lq_rep = lq[grp]
    i = local // np.maximum(lq_rep, 1)
    j = local % np.maximum(lq_rep, 1)
    return ip[gp[grp] + i], iq[gq[grp] + j]


def _split_rho_block(lmi: "LMI", z0: np.ndarray):
    lo, hi = lmi.blocks[0]
    if lo != 0:
        raise ValueError("the rho block must come first")
    return z0[:hi, :hi], z0[:hi, hi:], z0[hi:, hi:]


def exact_rho(lmi: "LMI", y: np.ndarray, shift: float = 0.0, z0: np.ndarray | None = None):
    """The smallest rho with Z(rho, lam) - shift*I >= 0 (float computation), or None if S - shift*I is not PD.

    ``shift`` may be a vector c (the shift is then diag(c)).

    ``y[0]`` is ignored. Returns (rho, z0) where z0 = Z with rho = 0.
    """
    y = np.array(y, dtype=np.float64)
    y[0] = 0.0
    if z0 is None:
        z0 = lmi.matrix(y)
    p, r, s = _split_rho_block(lmi, z0)
    n_rest = s.shape[0]
    vector = np.ndim(shift) > 0  # a diagonal shift diag(c) (weighted rounding bound), else c I
    if vector:
        shift = np.asarray(shift, dtype=np.float64)
        c_head, c_rest = shift[: p.shape[0]], shift[p.shape[0]:]
    else:
        c_head = c_rest = float(shift)
    if n_rest:
        a = np.array(s, order="F", copy=True)
        a[np.diag_indices(n_rest)] -= c_rest
        chol, info = sla.lapack.dpotrf(a, lower=1, overwrite_a=1, clean=1)
        if info != 0:
            return None, z0
        v = sla.solve_triangular(chol, r.T, lower=True, check_finite=False)
        if not vector and not np.any(p) and v.shape[0] < v.shape[1]:
            m = v @ v.T  # same nonzero spectrum as v^T v, smaller
        else:
            m = v.T @ v - p
    else:
        m = -p
    if vector:
        m = m + np.diag(c_head)
    m = 0.5 * (m + m.T)
    # divide and conquer: the MRRR driver (subset_by_index) is very slow on the clustered spectra seen here
    lam_max = float(sla.eigvalsh(m, driver="evd", check_finite=False)[-1]) if m.shape[0] > 1 else float(m[0, 0])
    if not np.any(p) and lam_max < 0:
        lam_max = 0.0
    rho = (lam_max if vector else lam_max + shift) / lmi.rho_coeff
    return rho, z0
