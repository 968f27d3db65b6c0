"""The result object of :func:`lipsdp.estimate` (one object, honest status, in the manner of scipy.optimize)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["LipschitzResult", "STATUSES"]

#: status -> meaning
STATUSES = {
    "optimal": "the solver converged and its multipliers were certified (possibly after a tiny repair)",
    "inaccurate": "the solver reported an inaccurate solution; its multipliers were still certified",
    "fallback": "the solver failed; the bound is certified from the strictly feasible starting multipliers "
                "(valid, but looser than the SDP optimum)",
    "naive": "the SDP certificate was looser than the product-of-norms bound (or none was found), so the proved "
             "naive bound is returned; details['sdp_bound'] keeps the SDP's certified value",
    "not_certified": "no multipliers could be certified; there is no bound",
}


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if obj is None or isinstance(obj, (int, str, bool)):
        return obj
    return str(obj)


@dataclass
class LipschitzResult:
    """Everything :func:`lipsdp.estimate` found out.

    Attributes:
        bound: the certified upper bound on the Lipschitz constant (None if not certified).
        certified: whether ``bound`` is proved (see README, "How bounds are certified").
        raw_bound: the bound implied by the solver's own objective value, before
            certification; informative only, it can be *below* the truth.
        naive_bound: product of the layers' induced norms and activation Lipschitz constants.
        lower_bound: the largest Jacobian norm / difference quotient found (empirical).
        norm: "l2" or "linf"; for linf and a vector output the bound is the l-infinity to
            l-infinity constant, i.e. the maximum over output rows of the per-row bounds
            (see ``per_output``).
        method: multiplier structure ("neuron", "layer", ...).
        solver: the backend used.
        status: one of :data:`STATUSES`.
        message: what happened, in words.
        time: seconds per stage: extract, build, solve, certify, naive, lower, total.
        multipliers: the multipliers proving the bound, in the unscaled network's LMI
            (``rho`` and one array per multiplier group); for several output rows, a list.
        lmi_size: order N of the LMI solved (after exact reductions) and certified.
        per_output: for l-infinity with several output rows, each row's result.
        region: the input region of a local bound (``Region.to_dict()``), None for a global bound.
        preactivation_bounds: for a local bound, the pre-activation intervals used, one dict per
            activation layer (``PreactivationBounds.to_dict()``: lower, upper, stable counts).
    """

    bound: float | None
    certified: bool
    raw_bound: float | None
    naive_bound: float | None
    lower_bound: float | None
    norm: str
    method: str
    solver: str
    status: str
    message: str = ""
    time: dict = field(default_factory=dict)
    multipliers: dict | list | None = None
    lmi_size: dict = field(default_factory=dict)
    network: str = ""
    output: str = "all outputs"
    per_output: list = field(default_factory=list)
    details: dict = field(default_factory=dict)
    region: dict | None = None
    preactivation_bounds: list = field(default_factory=list)

    @property
    def gap(self) -> float | None:
        """bound / lower_bound (>= 1; how far the certified bound may be from the truth)."""
        if self.bound is None or not self.lower_bound:
            return None
        return self.bound / self.lower_bound

    @property
    def improvement(self) -> float | None:
        """naive_bound / bound (how much the SDP improves on the product of norms)."""
        if self.bound is None or not self.naive_bound:
            return None
        return self.naive_bound / self.bound

    def __repr__(self) -> str:
        b = f"{self.bound:.6g}" if self.bound is not None else "None"
        return (f"LipschitzResult(bound={b}, certified={self.certified}, norm={self.norm!r}, "
                f"method={self.method!r}, solver={self.solver!r}, status={self.status!r})")

    def summary(self) -> str:
        """A readable multi-line report."""
        def f(v):
            return "-" if v is None else f"{v:.6g}"

        scope = "" if self.region is None else f", local over {self.region.get('description', 'a region')}"
        lines = [
            f"Lipschitz bound ({self.norm}, {self.output}{scope}) of {self.network or 'network'}",
            f"  certified upper bound : {f(self.bound)}   [{'certified' if self.certified else 'NOT certified'}]",
            f"  solver's raw bound    : {f(self.raw_bound)}",
            f"  naive bound           : {f(self.naive_bound)}",
            f"  empirical lower bound : {f(self.lower_bound)}",
        ]
        if self.gap is not None:
            lines.append(f"  gap (bound / lower)   : {self.gap:.4g}")
        if self.improvement is not None:
            lines.append(f"  naive / bound         : {self.improvement:.4g}")
        lines.append(f"  method {self.method}, solver {self.solver}, status {self.status}: {self.message}")
        if self.lmi_size:
            lines.append("  LMI size: " + ", ".join(f"{k} {v}" for k, v in self.lmi_size.items()))
        if self.time:
            lines.append("  time (s): " + ", ".join(f"{k} {v:.3g}" for k, v in self.time.items()))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-safe dictionary of every field (arrays become lists, non-finite numbers None)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["gap"] = self.gap
        return _jsonable(d)

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dict(), **kw)
