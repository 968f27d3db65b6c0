"""The naive (product-of-norms) upper bound, computed rigorously.

For a feedforward chain y = W_l phi_l(... phi_1(W_0 x)):

    Lip <= prod_k ||W_k|| * prod_k Lip(phi_k),

with ||.|| the induced norm (spectral for l2, max row l1 for l-infinity) and
Lip(phi) = max(|alpha|, |beta|). Every factor is an upper bound in exact
arithmetic: the spectral norm is proved with the same verified PSD test as the
SDP certificates (s^2 I - W W^T >= 0), the row sums are rounded up, and the
products are rounded up.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..certify.psd import UNIT_ROUNDOFF, gamma, norm_bound_inf, verify_psd

__all__ = ["spectral_norm_upper", "inf_norm_upper", "naive_bound", "chain_naive_bound", "product_up",
           "register_naive", "NAIVE_RULES"]

_GRAM_LIMIT = 6000


def product_up(values) -> float:
    """Product of nonnegative floats, rounded up at every step."""
    out = 1.0
    for v in values:
        out = float(np.nextafter(out * float(v), np.inf)) if out * float(v) > 0 else 0.0
    return out


def inf_norm_upper(w) -> float:
    """||W||_inf (max row l1 norm), rounded up."""
    a = abs(w) if sp.issparse(w) else np.abs(w)
    rows = np.asarray(a.sum(axis=1)).ravel()
    return float(rows.max()) * (1.0 + gamma(w.shape[1] + 1))


def _sigma_estimate(w) -> float:
    if sp.issparse(w) and min(w.shape) <= 64:  # ARPACK can fail on tiny matrices (e.g. 10 x 10 selections)
        return float(np.linalg.norm(w.toarray(), 2))
    if sp.issparse(w) or min(w.shape) > 1500:
        if min(w.shape) == 1:
            d = w.toarray() if sp.issparse(w) else w
            return float(np.linalg.norm(d))
        return float(spla.svds(sp.csr_matrix(w), k=1, return_singular_vectors=False, tol=1e-10)[0])
    return float(np.linalg.norm(w, 2))


def spectral_norm_upper(w) -> float:
    """A proved upper bound on ||W||_2 (within ~1e-12 relative of the true value when the Gram matrix fits).

    Proves s^2 I - W W^T >= 0 (or W^T W, whichever is smaller) with the verified Cholesky
    test; the Gram matrix's formation error is bounded by gamma_k |W| |W|^T. For a Gram
    matrix larger than 6000 x 6000 it falls back to the (looser, still rigorous)
    sqrt(||W||_1 ||W||_inf).
    """
    r, c = w.shape
    small = min(r, c)
    if small > _GRAM_LIMIT:
        n1 = inf_norm_upper(w.T if not sp.issparse(w) else w.T.tocsr())
        ninf = inf_norm_upper(w)
        return float(np.nextafter(np.sqrt(n1 * ninf), np.inf)) * (1.0 + 4 * UNIT_ROUNDOFF)
    a = w if r <= c else w.T
    if sp.issparse(a):
        a = sp.csr_matrix(a)
        gram = (a @ a.T).toarray()
        aa = abs(a)
        gabs = (aa @ aa.T).toarray()
    else:
        gram = a @ a.T
        aa = np.abs(a)
        gabs = aa @ aa.T
    k = a.shape[1] + 2
    e_gram = gamma(k) * norm_bound_inf(gabs)
    sigma = _sigma_estimate(w)
    if sigma == 0.0 and not np.any(gram):
        return 0.0
    for rel in (1e-12, 1e-9, 1e-6, 1e-3, 1e-1):
        s = float(np.nextafter(sigma * (1.0 + rel) + 1e-300, np.inf))
        s2 = float(np.nextafter(s * s, -np.inf))  # <= s^2 exactly
        z = -gram
        z[np.diag_indices(small)] += s2
        e_diag = UNIT_ROUNDOFF * float(np.max(np.abs(np.diag(z)) + s2))
        if verify_psd(z, formation_error=e_gram + e_diag).ok:
            return s
    # should not happen: fall back to the rigorous but loose bound
    return float(np.nextafter(np.sqrt(inf_norm_upper(w.T) * inf_norm_upper(w)), np.inf))


def chain_naive_bound(chain, norm: str = "l2") -> float:
    """Product of the layers' induced norms times the activations' Lipschitz constants (rounded up)."""
    norm_fn = spectral_norm_upper if norm == "l2" else inf_norm_upper
    factors = [norm_fn(w) for w in chain.weights]
    factors += [act.lipschitz_in(norm) for act in chain.activations]
    return product_up(factors)


#: (applies(network), naive(network, c, norm)) rules, tried in order; architectures register theirs
NAIVE_RULES: list = [
    (lambda net: net.is_feedforward, lambda net, c, norm: chain_naive_bound(net.chain().with_output(c), norm)),
]


def register_naive(applies, fn, first: bool = False) -> None:
    """Register the naive bound of another architecture."""
    if first:
        NAIVE_RULES.insert(0, (applies, fn))
    else:
        NAIVE_RULES.append((applies, fn))


def naive_bound(network, norm: str = "l2", c=None) -> float | None:
    """The naive bound of ``c @ network`` (None when no rule applies)."""
    for applies, fn in NAIVE_RULES:
        if applies(network):
            return fn(network, c, norm)
    return None


from . import naive_dag  # noqa: E402,F401  (registers the residual/implicit rules)
