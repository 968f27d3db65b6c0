"""A structure-exploiting primal-dual interior-point method for the LipSDP LMI (solver "ipm").

Problem (the dual SDP; notation of :mod:`lipsdp.sdp.lmi`):

    minimise  c^T y = y_0 (= rho)
    s.t.      Z(y) = C_0 + sum_i y_i A_i  >= 0   (PSD, N x N),      A_i = G^T Psi_i G,
              s = y_J >= 0                      (J: the nonnegative variables, an LP cone),

and its Lagrange dual (the primal SDP)

    maximise  -<C_0, X>   s.t.   <A_i, X> + [i in J] x_i = c_i,   X >= 0,  x >= 0,

with duality gap c^T y + <C_0, X> = <Z, X> + s^T x. The method keeps y strictly dual feasible
(it starts from :meth:`LMI.interior_point` and Z is always recomputed from y, so every
iterate is a valid certificate candidate) and X, x infeasible-start.

**Direction.** HKM (Helmberg-Kojima-Monteiro) with Mehrotra's predictor-corrector. Writing
W = Z^{-1}, the Newton system reduces to the Schur complement

    (M + diag_J(x / s)) dy = sigma mu (A^*(W) + E_J^T s^{-1}) - c - (corrector terms),
    M_ij = tr(A_i X A_j W),

followed by dX = sigma mu W - X - sym(X dZ W) (- sym(dX_a dZ_a W) in the corrector),
dZ = A(dy), dx = (sigma mu - dx_a ds_a) / s - x - (x / s) ds.

**Low-rank Schur complement.** Every A_i is a sum of atoms G_a^T K_a G_a with K_a an s x s
matrix on s <= 2 signals (rows of G). Stack the signal rows of all atoms (one row per atom
and local index: the *expanded* signals, n_e of them, G_e = G[idx_e]), let K~ be the block
diagonal of the K_a and Q = E P (E sums an atom's expanded rows, P is the tying). Then, with
H_W = G_e W G_e^T and H_X = G_e X G_e^T,

    M = Q^T [ (K~ H_W K~) o H_X ] Q,       A^*(W) = Q^T rowsum(K~ o H_W),

(o: elementwise product): O(nnz(G) N) for the two Gram matrices plus O(n_e^2) elementwise
work, instead of O(m N^3) for tr(A_i X A_j W) one by one. Products with G_e use dense BLAS
tiles (row groups x column blocks of the LMI), so a dense weight matrix costs one GEMM; the
selection rows (a neuron's own coordinate) are slices. Similarly W dZ X = (G_e W)^T K~(dy) (G_e X),
evaluated as W (G_e^T [K~(dy) (G_e X)]) (an N x N GEMM) when n_e > N, and the corrector term
tr(A_i dX_a dZ_a W) = Q^T rowsum(K~ o (H_dXa K~(dy_a) H_W)) on the atoms' diagonal blocks only.
Products with K~ are row / column gathers in ELL form (:class:`_Gather`): the expanded rows are
ordered so that these are a few contiguous slices, i.e. streaming passes. The Schur complement,
the corrector trace and dZ S are formed by blocks of rows / columns (~16 MB slabs), so the only
n_e x n_e arrays are H_W, H_X and H_dX. Per iteration at N = 4,880 (784-[1024]x4, n_e = 8,976) the floor is about three
N x N GEMMs, three Gram products, four Cholesky factorisations and one inverse.

**Factorisations.** Dense LAPACK Cholesky of Z (and of X for its step length), W by
``dpotri``; Cholesky of the m x m Schur complement. Step lengths: the largest alpha with
S + alpha dS >= 0 from the smallest eigenvalue of L^{-1} dS L^{-T} (Lanczos to 1 % with
O(N^2) products for N > 40, dense below or when Lanczos does not converge), then verified by a
Cholesky of the new point (backtracking if needed). The predicted gap <X + a dX, Z + b dZ> is
expanded into inner products with A^*(X) and A^*(dX), so the predictor's dZ is never formed.
Below N = 500 the solve runs on one BLAS thread (option ``threads``): OpenBLAS's thread
hand-offs on thousands of small calls cost more than they save (ACAS Xu: 2.5 s vs 1.0 s).

Stopping: relative gap <= ``gap_tol`` (1e-7 in rho: the l2 bound sqrt(rho) is then within 5e-8
of the SDP's optimum; the certified bound is computed from the multipliers anyway) and relative
primal residual <= ``feas_tol`` (1e-9). Statuses: "optimal"; "optimal_inaccurate" (stalled close
to optimal); "max_iter";
"infeasible" (no strictly feasible point: :meth:`LMI.interior_point` failed);
"unbounded" (the objective decreases without bound, primal infeasible); "error" (numerical
breakdown). Deterministic: no randomness, fixed Lanczos start vector.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..sdp.lmi import LMI
from .cvxpy_backend import SolveOutput

__all__ = ["solve_ipm", "applies", "IPMOptions"]

DEFAULTS = {
    "max_iter": 80,
    "gap_tol": 1e-7,
    "feas_tol": 1e-9,
    "step": 0.95,
    "adaptive": True,  # SDPT3's adaptive sigma exponent and step fraction (False: e = 3, step 0.95)
    "lanczos_min_n": 400,
    "lanczos_tol": 1e-2,  # relative accuracy of the step lengths' smallest eigenvalue (ARPACK tol)
    "interior_gap": 1e-5,  # info["y_interior"]: the last iterate with relative gap >= this (for certification)
    "centered_start": True,  # X = mu Z^{-1} at the start (else a multiple of I)
    "verbose": False,
    # BLAS threads during the solve; None: one below N = SINGLE_THREAD_BELOW_N, else left as set.
    # Small problems make thousands of small BLAS/LAPACK calls, and OpenBLAS's thread hand-offs
    # cost more than they save there (ACAS Xu, N = 305: 2.5 s with two threads, 0.95 s with one)
    "threads": None,
}
SINGLE_THREAD_BELOW_N = 500
_SLAB = 2 ** 21  # float64 entries of a temporary (16 MB): blocks of rows / columns, dense pieces
_DENSE_EIG_MAX_N = 40  # step lengths by a dense eigenvalue up to this N (Lanczos above)
_DENSE_EIG_FALLBACK_N = 3000  # ... and up to this N when Lanczos does not converge
IPMOptions = DEFAULTS


def applies(lmi: LMI) -> bool:
    """True when the IPM handles this LMI: objective rho = y_0 (always the case for :class:`LMI`)."""
    return isinstance(lmi, LMI) and lmi.n_vars >= 1 and lmi.size >= 1


# ---------------------------------------------------------------------------------------- structure
class _Gather:
    """out[i] = scale[i] * h[idx[i]] along an axis, by slices when idx is a few contiguous runs.

    The expanded signals are ordered so that an atom's rows and a neuron's coordinates run in
    the same order; the gathers are then a handful of slices (streaming copies) instead of
    fancy indexing (a random-access pass over an n_e x n_e matrix).
    """

    MAX_RUNS = 64

    def __init__(self, idx: np.ndarray):
        self.idx = np.asarray(idx, dtype=np.int64)
        brk = np.nonzero(np.diff(self.idx) != 1)[0] + 1
        starts = np.concatenate([[0], brk]).astype(int)
        stops = np.concatenate([brk, [self.idx.size]]).astype(int)
        self.runs = None
        self.unique = np.unique(self.idx).size == self.idx.size
        if self.idx.size and starts.size <= self.MAX_RUNS:
            self.runs = [(int(a), int(b), int(self.idx[a])) for a, b in zip(starts, stops)]

    def rows(self, h: np.ndarray, scale: np.ndarray, out: np.ndarray | None = None,
             accumulate: bool = True) -> np.ndarray:
        """scale[:, None] * h[idx], written to ``out`` (added to it if ``accumulate``) when given."""
        return self._gather(h, scale, out, accumulate, axis=0)

    def cols(self, h: np.ndarray, scale: np.ndarray, out: np.ndarray | None = None,
             accumulate: bool = True) -> np.ndarray:
        """scale[None, :] * h[:, idx], written to / added to ``out`` when given."""
        return self._gather(h, scale, out, accumulate, axis=1)

    def _gather(self, h, scale, out, accumulate, axis):
        sc = scale[:, None] if axis == 0 else scale[None, :]
        if self.runs is None:
            tmp = np.take(h, self.idx, axis=axis)
            tmp *= sc
            if out is None:
                return tmp
            if accumulate:
                out += tmp
            else:
                out[...] = tmp
            return out
        if out is None:
            shape = (self.idx.size, h.shape[1]) if axis == 0 else (h.shape[0], self.idx.size)
            out = np.empty(shape)
            accumulate = False
        for a, b, s0 in self.runs:
            if axis == 0:
                src, dst, sca = h[s0:s0 + b - a], out[a:b], scale[a:b, None]
            else:
                src, dst, sca = h[:, s0:s0 + b - a], out[:, a:b], scale[None, a:b]
            if accumulate:
                dst += src * sca
            else:
                np.multiply(src, sca, out=dst)
        return out

    def scatter_add(self, out: np.ndarray, b: np.ndarray, scale: np.ndarray) -> None:
        """out[idx] += scale[:, None] * b (repeated indices accumulate)."""
        if self.runs is not None and self.unique:
            for a, c, s0 in self.runs:
                out[s0:s0 + c - a] += b[a:c] * scale[a:c, None]
        else:
            np.add.at(out, self.idx, b * scale[:, None])


class _Tiled:
    """A sparse (r x N) matrix stored as tiles: contiguous row groups x contiguous column ranges.

    Dense tiles (density > 5 %) are numpy arrays used through BLAS; selection tiles (one nonzero
    per row: a neuron's own coordinate) are a gather / scatter of rows; the others stay CSR.
    """

    def __init__(self, mat: sp.csr_matrix, col_blocks: list, row_groups: list):
        self.shape = mat.shape
        mat = mat.tocsr()
        self.tiles = []
        edges = np.array([b[0] for b in col_blocks] + [col_blocks[-1][1]])
        for r0, r1 in row_groups:
            sub = mat[r0:r1]
            if sub.nnz == 0:
                continue
            cols = sub.indices
            b_lo = int(np.searchsorted(edges, cols.min(), side="right") - 1)
            b_hi = int(np.searchsorted(edges, cols.max(), side="right") - 1)
            c0, c1 = int(edges[b_lo]), int(edges[b_hi + 1])
            t = sub[:, c0:c1]
            if np.all(np.diff(t.indptr) == 1):
                t.sort_indices()
                t = ("select", _Gather(t.indices.astype(np.int64) + c0), t.data.copy())
            elif t.nnz > 0.05 * t.shape[0] * t.shape[1]:
                t = t.toarray()
            else:
                t = t.tocsr()
            self.tiles.append((r0, r1, c0, c1, t))

    def matmul(self, d: np.ndarray) -> np.ndarray:
        """G @ d for dense d (N x k)."""
        covered = sum(r1 - r0 for r0, r1, *_ in self.tiles) == self.shape[0]
        out = (np.empty if covered else np.zeros)((self.shape[0], d.shape[1]))
        for r0, r1, c0, c1, t in self.tiles:
            if isinstance(t, tuple):
                t[1].rows(d, t[2], out=out[r0:r1], accumulate=False)
            elif isinstance(t, np.ndarray):
                np.matmul(t, d[c0:c1], out=out[r0:r1])
            else:
                out[r0:r1] = t @ d[c0:c1]
        return out

    def rmatmul(self, b: np.ndarray) -> np.ndarray:
        """G^T @ b for dense b (r x k)."""
        out = np.zeros((self.shape[1], b.shape[1]))
        for r0, r1, c0, c1, t in self.tiles:
            if isinstance(t, tuple):
                t[1].scatter_add(out, b[r0:r1], t[2])
            else:
                out[c0:c1] += t.T @ b[r0:r1]
        return out


class _Structure:
    """The expanded-signal data of an LMI (see the module docstring)."""

    def __init__(self, lmi: LMI):
        n = lmi.size
        g = lmi.G.tocsr()
        idx, atom_id, krow, kcol, kval = [], [], [], [], []
        e0 = 0
        a0 = 0
        for b in lmi.atoms:
            na, s = b.count, b.size
            idx.append(b.support.ravel())
            atom_id.append(np.repeat(np.arange(a0, a0 + na), s))
            base = e0 + s * np.arange(na)
            for p in range(s):
                for q in range(s):
                    v = b.coeff[:, p, q]
                    nz = v != 0
                    krow.append(base[nz] + p)
                    kcol.append(base[nz] + q)
                    kval.append(v[nz])
            e0 += na * s
            a0 += na
        idx = np.concatenate(idx) if idx else np.zeros(0, np.int64)
        atom_id = np.concatenate(atom_id) if atom_id else np.zeros(0, np.int64)
        ne = e0
        # order the expanded rows by the column blocks they touch, so that rows of one kind are contiguous
        ge = g[idx]
        edges = np.array([blk[0] for blk in lmi.blocks] + [n])
        lo = np.full(ne, -1)
        hi = np.full(ne, -1)
        nnz_rows = np.diff(ge.indptr)
        has = nnz_rows > 0
        if ge.nnz:
            rows_sorted = ge.copy()
            rows_sorted.sort_indices()
            first = rows_sorted.indices[rows_sorted.indptr[:-1][has]]
            last = rows_sorted.indices[rows_sorted.indptr[1:][has] - 1]
            lo[has] = np.searchsorted(edges, first, side="right") - 1
            hi[has] = np.searchsorted(edges, last, side="right") - 1
        multi = (nnz_rows > 1).astype(np.int64)  # selection rows (one nonzero) apart from the others
        perm = np.lexsort((idx, multi, hi, lo))
        inv = np.empty(ne, np.int64)
        inv[perm] = np.arange(ne)
        self.idx = idx[perm]
        ge = ge[perm].tocsr()
        key = np.stack([lo[perm], hi[perm], multi[perm]], axis=1)
        breaks = np.nonzero(np.any(key[1:] != key[:-1], axis=1))[0] + 1
        starts = np.concatenate([[0], breaks]).astype(int)
        stops = np.concatenate([breaks, [ne]]).astype(int)
        self.ge = ge
        self.tiled = _Tiled(ge, lmi.blocks, list(zip(starts.tolist(), stops.tolist())))
        krow = inv[np.concatenate(krow)] if krow else np.zeros(0, np.int64)
        kcol = inv[np.concatenate(kcol)] if kcol else np.zeros(0, np.int64)
        kval = np.concatenate(kval) if kval else np.zeros(0)
        self.K = sp.csr_matrix((kval, (krow, kcol)), shape=(ne, ne))
        self.Kcoo = self.K.tocoo()
        # the same K~ in ELL form (row r: entries k_val[q, r] at columns k_idx[q, r]; padding has value 0),
        # for dense products by row / column gathers: no sparse-times-dense calls, no transposed copies
        per_row = np.diff(self.K.indptr)
        width = int(per_row.max()) if ne else 0
        self.k_idx = np.tile(np.arange(ne), (width, 1))
        self.k_val = np.zeros((width, ne))
        slot = np.arange(self.K.nnz) - np.repeat(self.K.indptr[:-1], per_row)
        rows = np.repeat(np.arange(ne), per_row)
        self.k_idx[slot, rows] = self.K.indices
        self.k_val[slot, rows] = self.K.data
        n_atoms = a0
        e_mat = sp.csr_matrix((np.ones(ne), (inv[np.arange(ne)], atom_id)), shape=(ne, n_atoms))
        self.Q = (e_mat @ lmi.tying).tocsr()  # (ne x m)
        self.QT = self.Q.T.tocsr()
        self.n = n
        self.ne = ne
        self.m = lmi.n_vars
        self.C0 = lmi.matrix(np.zeros(lmi.n_vars), constant=True)
        # W dZ X as an N x N GEMM after G_e^T (...) when that is cheaper than the n_e-inner product
        self.wide = ne * n > n * n + ge.nnz
        # K~ G_e by row groups of G_e's tiles, restricted to the columns each touches (an atom spans
        # two layer blocks): A(y) = sum over tiles of tile^T diag(Q y) (K~ G_e)[rows, cols], the
        # pieces dense when they are small in all (<= 16 MB), else CSR made dense one at a time
        kg = (self.K @ ge).tocsr()
        pieces = []
        for r0, r1, *_ in self.tiled.tiles:
            sub = kg[r0:r1]
            if sub.nnz == 0:
                pieces.append(None)
                continue
            lo, hi = int(sub.indices.min()), int(sub.indices.max()) + 1
            pieces.append((lo, hi, sub[:, lo:hi].tocsr()))
        if sum((p[1] - p[0]) * p[2].shape[0] for p in pieces if p) <= _SLAB:
            pieces = [p and (p[0], p[1], p[2].toarray()) for p in pieces]
        self._kg_pieces = pieces
        self._block_cache = {}

    def kweighted(self, y: np.ndarray) -> sp.csr_matrix:
        """K~(y) = diag(Q y) K~ (every entry of an atom's block scaled by the atom's weight)."""
        w = self.Q @ y
        return sp.csr_matrix((self.K.data * w[self.Kcoo.row], self.K.indices, self.K.indptr), shape=self.K.shape)

    def k_rows(self, h: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        """K~(y) h (K~ if y is None) for dense h (n_e x k), by row gathers.

        diag(Q y) commutes with K~ (an atom's rows share its weight), so the weights scale rows.
        """
        out = self._k_rows_block(h, 0, self.ne)
        if y is not None:
            out *= (self.Q @ y)[:, None]
        return out

    def k_cols(self, h: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        """h K~(y) for dense h (k x n_e), by column gathers (K~ symmetric)."""
        gathers = self._block(0, self.ne)[0]
        out = gathers[0].cols(h, self.k_val[0])
        for q in range(1, len(gathers)):
            gathers[q].cols(h, self.k_val[q], out=out)
        if y is not None:
            out *= (self.Q @ y)[None, :]
        return out

    def op(self, y: np.ndarray) -> np.ndarray:
        """A(y) = G_e^T diag(Q y) (K~ G_e) (dense N x N, without C_0), tile by tile of G_e^T.

        K~ G_e is precomputed per row group of G_e, over the columns that group touches
        (``_kg_pieces``); no n_e x N dense array is formed.
        """
        w = self.Q @ y
        out = np.zeros((self.n, self.n))
        for (r0, r1, c0, c1, t), piece in zip(self.tiled.tiles, self._kg_pieces):
            if piece is None:
                continue
            lo, hi, kg = piece
            dense = kg * w[r0:r1, None] if isinstance(kg, np.ndarray) else kg.toarray() * w[r0:r1, None]
            if isinstance(t, tuple):
                t[1].scatter_add(out[:, lo:hi], dense, t[2])
            else:
                out[c0:c1, lo:hi] += t.T @ dense
        return 0.5 * (out + out.T)

    def gram(self, x: np.ndarray):
        """(G_e X, G_e X G_e^T) for a dense symmetric X."""
        t = self.tiled.matmul(x)
        h = self.tiled.matmul(t.T)  # G_e (G_e X)^T: BLAS reads the transposed view, no copy
        return t, h  # symmetric up to rounding; every use is symmetric in it

    def adjoint_from_gram(self, h: np.ndarray) -> np.ndarray:
        """A^*(X)_i = tr(A_i X) from H = G_e X G_e^T: Q^T rowsum(K~ o H)."""
        k = self.Kcoo
        v = np.bincount(k.row, weights=k.data * h[k.row, k.col], minlength=self.ne)
        return self.QT @ v

    def _row_blocks(self, width: int, count: int | None = None):
        """Ranges of ``count`` (default n_e) rows whose (rows x width) float64 slabs stay around
        16 MB (cache-friendly temporaries)."""
        count = self.ne if count is None else count
        step = max(1, _SLAB // max(width, 1))
        return [(r0, min(count, r0 + step)) for r0 in range(0, count, step)]

    def _block(self, r0: int, r1: int):
        """Per row block [r0, r1) of the expanded signals: K~'s row gathers and Q[r0:r1]^T (cached)."""
        key = (r0, r1)
        if key not in self._block_cache:
            self._block_cache[key] = ([_Gather(ix[r0:r1]) for ix in self.k_idx], self.Q[r0:r1].T.tocsr())
        return self._block_cache[key]

    def _k_rows_block(self, h: np.ndarray, r0: int, r1: int) -> np.ndarray:
        """(K~ h)[r0:r1] by row gathers (contiguous slices where the indices run)."""
        gathers = self._block(r0, r1)[0]
        out = gathers[0].rows(h, self.k_val[0, r0:r1])
        for q in range(1, len(gathers)):
            gathers[q].rows(h, self.k_val[q, r0:r1], out=out)
        return out

    def schur(self, hw: np.ndarray, hx: np.ndarray) -> np.ndarray:
        """M = Q^T [(K~ H_W K~) o H_X] Q, by blocks of rows (no n_e x n_e temporaries)."""
        left = np.zeros((self.m, self.ne))  # Q^T [(K H K) o H_X]
        for r0, r1 in self._row_blocks(self.ne):
            b = self.k_cols(self._k_rows_block(hw, r0, r1))  # (K H K)[r0:r1]
            b *= hx[r0:r1]
            left += self._block(r0, r1)[1] @ b
        return np.asarray((self.QT @ left.T).T)

    def corrector_trace(self, h_dx: np.ndarray, dy: np.ndarray, h_w: np.ndarray) -> np.ndarray:
        """tr(A_i dX dZ W) for all i, with dZ = A(dy): Q^T rowsum(K~ o (H_dX K~(dy) H_W)).

        Evaluated by blocks of rows of H_dX K~(dy), each used at once on K~'s nonzeros in those rows.
        """
        w = self.Q @ dy
        kcsr = self.K
        v = np.zeros(self.ne)
        for r0, r1 in self._row_blocks(self.ne):
            rb = self.k_cols(h_dx[r0:r1])
            rb *= w[None, :]
            e0, e1 = kcsr.indptr[r0], kcsr.indptr[r1]
            r = self.Kcoo.row[e0:e1]
            c = kcsr.indices[e0:e1]
            vals = np.einsum("ij,ij->i", rb[r - r0], h_w[c])  # h_w symmetric
            v += np.bincount(r, weights=kcsr.data[e0:e1] * vals, minlength=self.ne)
        return self.QT @ v

    def dz_times(self, t: np.ndarray, y: np.ndarray) -> np.ndarray:
        """G_e^T K~(y) t for t = G_e S (n_e x N): dZ S with dZ = A(y), by column blocks of t."""
        out = np.empty((self.n, t.shape[1]))
        for c0, c1 in self._row_blocks(self.ne, t.shape[1]):  # column blocks of the n_e x N t
            out[:, c0:c1] = self.tiled.rmatmul(self.k_rows(t[:, c0:c1], y))
        return out


# ---------------------------------------------------------------------------------------- helpers
def _chol(a: np.ndarray):
    """Lower Cholesky factor or None (no exception) if ``a`` is not numerically positive definite."""
    c, info = sla.lapack.dpotrf(a, lower=1, clean=1, overwrite_a=0)
    if info != 0:
        return None
    return c


def _inv_from_chol(lc: np.ndarray) -> np.ndarray:
    """(L L^T)^{-1} from the lower factor, full symmetric (LAPACK dpotri fills one triangle)."""
    inv, info = sla.lapack.dpotri(lc, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError("dpotri failed")
    return _fill_upper_from_lower(inv)


def _fill_upper_from_lower(a: np.ndarray, block: int = 256) -> np.ndarray:
    """Copy the lower triangle onto the upper one in place, by square-ish blocks (cache-friendly
    transposed copies; np.tril(a) + np.tril(a, -1).T makes three full N x N temporaries)."""
    n = a.shape[0]
    for r0 in range(0, n, block):
        r1 = min(n, r0 + block)
        a[r0:r1, r1:] = a[r1:, r0:r1].T
        d = a[r0:r1, r0:r1]
        d[...] = np.tril(d) + np.tril(d, -1).T
    return a


def _trsolve(lc: np.ndarray, b: np.ndarray, trans: int = 0) -> np.ndarray:
    """L^{-1} b (trans=0) or L^{-T} b (trans=1) for lower triangular L (LAPACK dtrtrs, no checks)."""
    x, info = sla.lapack.dtrtrs(lc, b, lower=1, trans=trans)
    if info != 0:
        raise np.linalg.LinAlgError("singular triangular factor")
    return x


def _min_eig_scaled(lc: np.ndarray, d, n: int, tol: float = 1e-2) -> float:
    """Smallest eigenvalue of L^{-1} D L^{-T}; ``d`` is a dense symmetric matrix or a callable v -> D v.

    Lanczos (ARPACK) on v -> L^{-1} D L^{-T} v: ~15 products, each two triangular solves and one
    product with D, i.e. O(N^2) each, against O(N^3) for forming L^{-1} D L^{-T} (dsygst) and
    tridiagonalising it. Dense for tiny N (ARPACK's 12 vectors would be most of the space), and
    whenever Lanczos does not converge (badly conditioned iterates, e.g. ACAS Xu in l-infinity)
    below _DENSE_EIG_FALLBACK_N; above it Lanczos is retried with more vectors.
    """
    if n <= _DENSE_EIG_MAX_N:
        return _min_eig_scaled_dense(lc, d, n)

    def mv(v):
        v = np.asarray(v).reshape(n, -1)
        u = _trsolve(lc, v, trans=1)
        w = d @ u if isinstance(d, np.ndarray) else d(u)
        return _trsolve(lc, w)

    opr = spla.LinearOperator((n, n), matvec=mv, matmat=mv, dtype=np.float64)
    v0 = np.ones(n) / np.sqrt(n)
    # ARPACK's residual test |r| <= tol |theta| bounds the Ritz value's error by tol |theta|: a
    # step at most ~1 % too long, inside the step fraction, and checked by Cholesky anyway;
    # 12 Lanczos vectors per restart: ~15 products per step length instead of ~27 (24, 1e-3)
    for ncv, maxiter in ((12, 60), (40, 300)):
        try:
            lam = spla.eigsh(opr, k=1, which="SA", v0=v0, tol=tol, maxiter=maxiter, return_eigenvectors=False,
                             ncv=min(n - 1, ncv))
            return float(lam[0])
        except spla.ArpackNoConvergence:
            if n <= _DENSE_EIG_FALLBACK_N:
                return _min_eig_scaled_dense(lc, d, n)
    return -np.inf  # no estimate: the caller takes no step (and the iteration stalls visibly)


def _min_eig_scaled_dense(lc: np.ndarray, d, n: int) -> float:
    dd = d if isinstance(d, np.ndarray) else d(np.eye(n))
    # L^{-1} D L^{-T} in one LAPACK call (dsygst, itype 1); only its lower triangle is referenced
    b, info = sla.lapack.dsygst(dd, lc, itype=1, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError("dsygst failed")
    return float(sla.eigh(b, lower=True, eigvals_only=True, subset_by_index=[0, 0], check_finite=False)[0])


def _max_step_lp(s: np.ndarray, ds: np.ndarray) -> float:
    neg = ds < 0
    if not np.any(neg):
        return np.inf
    with np.errstate(over="ignore"):  # a tiny negative ds_i: an (harmless) infinite step for that entry
        return float(np.min(-s[neg] / ds[neg]))


def _max_step_psd(lc, d, n, opts) -> float:
    lam = _min_eig_scaled(lc, d, n, opts["lanczos_tol"])
    if not np.isfinite(lam):
        return 0.0
    return np.inf if lam >= 0 else 1.0 / (-lam)


# ---------------------------------------------------------------------------------------- solver
def solve_ipm(lmi: LMI, verbose: bool = False, **options) -> SolveOutput:
    """Minimise rho = y_0 subject to Z(y) >= 0 and the sign constraints (module docstring)."""
    opts = dict(DEFAULTS)
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown ipm options {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    opts.update(options)
    verbose = verbose or opts["verbose"]
    threads = opts["threads"]
    if threads is None and lmi.size < SINGLE_THREAD_BELOW_N:
        threads = 1
    with _blas_threads(threads):
        return _solve(lmi, verbose, opts)


def _blas_threads(threads: int | None):
    """Context limiting the BLAS thread pools (threadpoolctl); a no-op for None or without threadpoolctl."""
    if threads is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency; degrade to the current setting
        return contextlib.nullcontext()
    return threadpool_limits(limits=int(threads), user_api="blas")


def _solve(lmi: LMI, verbose: bool, opts: dict) -> SolveOutput:
    t0 = time.perf_counter()
    try:
        st = _Structure(lmi)
    except MemoryError as exc:
        return SolveOutput(None, "error", None, time.perf_counter() - t0, "ipm", raw_status=f"MemoryError: {exc}")
    t_build = time.perf_counter() - t0
    t1 = time.perf_counter()
    try:
        y_start = lmi.interior_point()
    except (ArithmeticError, np.linalg.LinAlgError) as exc:
        return SolveOutput(None, "infeasible", None, time.perf_counter() - t1, "ipm",
                           raw_status=f"no strictly feasible point: {exc}", info={"build_time": t_build})
    try:
        out = _run(st, lmi, y_start, opts, verbose)
    except (np.linalg.LinAlgError, FloatingPointError, ValueError) as exc:
        out = (None, "error", f"numerical breakdown: {type(exc).__name__}: {exc}", {})
    y, status, raw, info = out
    info["build_time"] = t_build
    obj = None if y is None else float(y[0])
    return SolveOutput(y, status, obj, time.perf_counter() - t1, "ipm", raw_status=raw, info=info)


def _run(st: _Structure, lmi: LMI, y: np.ndarray, opts: dict, verbose: bool):
    n, m = st.n, st.m
    nn = np.nonzero(lmi.nonneg)[0]
    c = np.zeros(m)
    c[0] = 1.0
    y = np.array(y, dtype=np.float64)
    # strict positivity of the LP slacks
    if nn.size:
        y[nn] = np.maximum(y[nn], 1e-8 * max(1.0, float(np.max(np.abs(y)))))
    z = st.C0 + st.op(y)
    lz = _chol(z)
    if lz is None:
        return None, "infeasible", "the starting point is not strictly feasible", {}
    xi = max(1.0, float(np.sqrt(n)) / max(1.0, float(np.linalg.norm(np.diag(z)) / np.sqrt(n))))
    x_mat = np.eye(n) * xi
    x_lp = np.full(nn.size, xi)
    if opts.get("centered_start", True):
        # perfectly centred start X = mu Z^{-1} (X Z = mu I), mu chosen so that the rho row of the
        # primal equations, A_0(X) = 1, holds; the LP part likewise x_lp = mu / s. Kept only when
        # its primal residual is no larger than the plain start's (with free multipliers, e.g. the
        # MaxMin equality terms, Z^{-1} can violate the other primal equations by orders of magnitude).
        w0 = _inv_from_chol(lz)
        a0 = float(st.adjoint_from_gram(st.gram(w0)[1])[0])
        if a0 > 0 and np.isfinite(a0):
            mu0 = 1.0 / a0
            xc_lp = mu0 / y[nn] if nn.size else np.zeros(0)

            def residual(xm, xl):
                r = c - st.adjoint_from_gram(st.gram(xm)[1])
                r[nn] -= xl
                return float(np.linalg.norm(r))

            if residual(mu0 * w0, xc_lp) <= residual(x_mat, x_lp):
                x_mat, x_lp = mu0 * w0, xc_lp
    n_cone = n + nn.size
    lx = None  # Cholesky factor of X (kept from the step that produced X)
    last_steps = None
    t_start = time.perf_counter()
    best = None
    y_interior = None
    hist = []
    status, raw = "max_iter", "iteration limit reached"
    it = 0
    for it in range(1, opts["max_iter"] + 1):
        s = y[nn]
        w = _inv_from_chol(lz)
        tw, hw = st.gram(w)
        tx, hx = st.gram(x_mat)
        aw = st.adjoint_from_gram(hw)
        ax = st.adjoint_from_gram(hx)
        rp = c - ax
        rp[nn] -= x_lp
        gap_sdp = float(np.sum(x_mat * z))
        gap = gap_sdp + float(x_lp @ s)
        mu = gap / n_cone
        pobj = -float(np.sum(st.C0 * x_mat))
        dobj = float(y[0])
        pinf = float(np.linalg.norm(rp)) / (1.0 + np.linalg.norm(c))
        rgap = gap / max(abs(dobj), abs(pobj), 1e-8)
        hist.append((dobj, rgap, pinf))
        if rgap >= opts["interior_gap"] or y_interior is None:
            y_interior = y.copy()  # the last iterate still this far inside: a close, strictly feasible repair point
        if verbose:
            steps = f"  steps {last_steps[0]:.2f} {last_steps[1]:.2f}  sigma {last_steps[2]:.2f}" if last_steps else ""
            print(f"ipm {it:3d}  rho {dobj:.10e}  gap {rgap:.2e}  pinf {pinf:.2e}  mu {mu:.2e}{steps}"
                  f"  t {time.perf_counter() - t_start:.1f}s", flush=True)
        if rgap <= opts["gap_tol"] and pinf <= opts["feas_tol"]:
            status, raw = "optimal", f"converged: relative gap {rgap:.1e}, primal residual {pinf:.1e}"
            break
        if not np.all(np.isfinite([gap, pinf, dobj])):
            status, raw = "error", "non-finite iterate"
            break
        if dobj < -1e12:
            status, raw = "unbounded", "the objective decreases without bound (the primal problem is infeasible)"
            break
        mmat = st.schur(hw, hx)
        mmat = 0.5 * (mmat + mmat.T)
        if nn.size:
            mmat[nn, nn] += x_lp / s
        lm = _chol(mmat)
        if lm is None:
            reg = 1e-14 * max(1.0, float(np.max(np.abs(np.diag(mmat)))))
            for _ in range(8):
                lm = _chol(mmat + reg * np.eye(m))
                if lm is not None:
                    break
                reg *= 100
            if lm is None:
                status, raw = "error", "Schur complement is not positive definite"
                break

        def solve_m(r):
            return sla.cho_solve((lm, True), r)

        def x_dir(sig_mu, dyv, corr=None):
            # dX = sig_mu W - X - sym(W dZ X) [- sym(dXa dZa W)], W dZ X = (G_e W)^T K~(dy) (G_e X)
            # = W (G_e^T K~(dy) G_e X): the cheaper of the two orders (st.wide: N x N GEMMs)
            if st.wide:
                prod = w @ st.dz_times(tx, dyv)
                if corr is not None:
                    prod += corr[0] @ st.dz_times(tw, corr[2])
            else:
                prod = tw.T @ st.k_rows(tx, dyv)
                if corr is not None:
                    prod += corr[1].T @ st.k_rows(tw, corr[2])
            dx = -x_mat - 0.5 * (prod + prod.T)
            if sig_mu:
                dx += sig_mu * w
            return dx

        # ---------------- predictor (sigma = 0)
        dy_a = solve_m(-c)
        dxm_a = x_dir(0.0, dy_a)
        ds_a = dy_a[nn]
        dxl_a = -x_lp - (x_lp / s) * ds_a

        def dz_apply(dyv):  # v -> A(dy) v without forming A(dy): G_e^T K~(dy) G_e v
            kdy = st.kweighted(dyv)
            return lambda v: st.tiled.rmatmul(kdy @ st.tiled.matmul(v))

        if lx is None:
            lx = _chol(x_mat)
        if lx is None:
            status, raw = "error", "primal iterate lost definiteness"
            break
        dense_steps = n < opts["lanczos_min_n"]  # small N: dZ as a dense matrix (one product), else matvecs
        ap = min(1.0, _max_step_psd(lx, dxm_a, n, opts), _max_step_lp(x_lp, dxl_a))
        ad = min(1.0, _max_step_psd(lz, st.op(dy_a) if dense_steps else dz_apply(dy_a), n, opts),
                 _max_step_lp(s, ds_a))
        tdx_a, hdx_a = st.gram(dxm_a)
        # predicted gap <X + ap dXa, Z + ad dZa> without forming dZa: <X, A(dy)> = dy^T A^*(X)
        gap_a = float(gap_sdp + ad * (dy_a @ ax) + ap * np.sum(dxm_a * z)
                      + ap * ad * (dy_a @ st.adjoint_from_gram(hdx_a))
                      + (x_lp + ap * dxl_a) @ (s + ad * ds_a))
        # Mehrotra's sigma = (predicted gap ratio)^e; SDPT3's adaptive exponent e = max(1, 3 min(ap, ad)^2)
        # centres more when the predictor could not go far (the iterates are close to the boundary)
        expon = max(1.0, 3.0 * min(ap, ad) ** 2) if opts["adaptive"] else 3.0
        sigma = min(1.0, max(0.0, gap_a / gap)) ** expon
        # ---------------- corrector
        cc = st.corrector_trace(hdx_a, dy_a, hw)
        rhs = sigma * mu * aw - c - cc
        if nn.size:
            rhs[nn] += (sigma * mu - dxl_a * ds_a) / s
        dy = solve_m(rhs)
        dxm = x_dir(sigma * mu, dy, (dxm_a, tdx_a, dy_a))
        ds = dy[nn]
        dxl = (sigma * mu - dxl_a * ds_a) / s - x_lp - (x_lp / s) * ds
        gamma = opts["step"]
        if opts["adaptive"]:  # SDPT3: step fraction 0.9 + 0.09 min(ap, ad) of the predictor
            gamma = min(gamma, 0.9 + 0.09 * min(ap, ad))
        ap = min(1.0, gamma * _max_step_psd(lx, dxm, n, opts), gamma * _max_step_lp(x_lp, dxl))
        ad = min(1.0, gamma * _max_step_psd(lz, st.op(dy) if dense_steps else dz_apply(dy), n, opts),
                 gamma * _max_step_lp(s, ds))
        # take the steps, verifying definiteness by Cholesky (backtrack if the estimate was optimistic)
        new_lz = None
        for _ in range(30):
            y_new = y + ad * dy
            z_new = st.C0 + st.op(y_new)
            new_lz = _chol(z_new)
            if new_lz is not None and (nn.size == 0 or np.all(y_new[nn] > 0)):
                break
            ad *= 0.7
            new_lz = None
        if new_lz is None:
            status, raw = "optimal_inaccurate" if hist and rgap < 1e-5 and pinf < 1e-5 else "error", "dual step failed"
            break
        for _ in range(30):
            x_new = x_mat + ap * dxm
            x_new = 0.5 * (x_new + x_new.T)
            lx = _chol(x_new)
            if lx is not None and (nn.size == 0 or np.all(x_lp + ap * dxl > 0)):
                break
            ap *= 0.7
            lx = None
        y, z, lz = y_new, z_new, new_lz
        last_steps = (ap, ad, sigma)
        x_mat = x_new
        x_lp = x_lp + ap * dxl
        if max(ap, ad) < 1e-10:
            status, raw = ("optimal_inaccurate" if rgap < 1e-5 and pinf < 1e-5 else "error"), "step length vanished"
            break
    else:
        if hist and hist[-1][1] < 1e-6 and hist[-1][2] < 1e-6:
            status = "optimal_inaccurate"
    info = {"iterations": it, "rel_gap": hist[-1][1] if hist else None,
            "primal_residual": hist[-1][2] if hist else None, "y_interior": y_interior}
    return y, status, raw, info
