"""A torch implicit (equilibrium, DEQ) layer that lipsdp extracts and bounds.

``ImplicitLayer(in_features, hidden, out_features, activation=nn.ReLU())`` computes

    z = act(W z + U x + b),   y = C z + D x + c

with the equilibrium solved in float64 by :class:`lipsdp.network.implicit.Implicit`
(Picard iteration, then Newton) to ``||z - act(W z + U x + b)||_inf <= tol * max(1, ||z||_inf)``
(``tol = 1e-10`` by default), and exact gradients by the implicit function theorem: the
forward applies the map once more at the equilibrium z*, z = f(z*, x), and a hook replaces the
gradient g of z by (I - J_f^T)^{-1} g, J_f = df/dz at z* (dense, per sample).

``monotone=m`` (m > 0) parametrises W = (1 - m) I - A^T A + B - B^T (Winston & Kolter 2020),
which makes the layer well-posed for every activation slope-restricted in [0, 1]
(2 I - W - W^T = 2 m I + 2 A^T A > 0); otherwise W is a free parameter and lipsdp checks
well-posedness when bounding (:class:`~lipsdp.errors.NotWellPosedError`).

``lipsdp.extract`` turns the module into :class:`~lipsdp.network.implicit.Implicit`;
:meth:`ImplicitLayer.to_lipsdp` does it directly. Any activation module the torch extractor
knows (a registered module handler returning one activation layer) can be used. To bound
your own DEQ, build ``lipsdp.network.Implicit(W, U, b, C, D, activation)`` from its weights
and wrap it in ``lipsdp.Network([...])``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .errors import EquilibriumError, UnsupportedLayerError
from .network.implicit import Implicit

__all__ = ["ImplicitLayer"]


class ImplicitLayer(nn.Module):
    """z = act(W z + U x + b), y = C z + D x + c; see the module docstring.

    Args:
        in_features, hidden, out_features: sizes of x, z, y.
        activation: an activation module (default ``nn.ReLU()``).
        feedthrough: include the D x term.
        monotone: m > 0 for the monotone parametrisation of W, None for a free W.
        tol, max_iter: equilibrium tolerance and Newton step limit.
    """

    def __init__(self, in_features: int, hidden: int, out_features: int, activation: nn.Module | None = None,
                 feedthrough: bool = True, monotone: float | None = None, tol: float = 1e-10, max_iter: int = 100):
        super().__init__()
        self.hidden = int(hidden)
        self.activation = activation if activation is not None else nn.ReLU()
        self.U = nn.Linear(in_features, hidden)
        self.C = nn.Linear(hidden, out_features)
        self.D = nn.Linear(in_features, out_features, bias=False) if feedthrough else None
        self.monotone = monotone
        if monotone is None:
            self.W_raw = nn.Parameter(torch.randn(hidden, hidden) * (0.5 / hidden ** 0.5))
        else:
            if not monotone > 0:
                raise ValueError(f"monotone must be positive, got {monotone}")
            self.A = nn.Parameter(torch.randn(hidden, hidden) * (0.5 / hidden ** 0.5))
            self.B = nn.Parameter(torch.randn(hidden, hidden) * (0.5 / hidden ** 0.5))
        self.tol = float(tol)
        self.max_iter = int(max_iter)

    @property
    def W(self) -> torch.Tensor:
        """The feedback matrix (a function of the parameters)."""
        if self.monotone is None:
            return self.W_raw
        eye = torch.eye(self.hidden, dtype=self.A.dtype, device=self.A.device)
        return (1.0 - self.monotone) * eye - self.A.T @ self.A + self.B - self.B.T

    def _f(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.activation(z @ self.W.T + self.U(x))

    def to_lipsdp(self, name: str = "") -> Implicit:
        """The :class:`Implicit` layer of the current weights (float64)."""
        from .extract.torch import MODULE_HANDLERS, NodeContext, _ensure_handlers, _find_handler

        _ensure_handlers()
        handler = _find_handler(MODULE_HANDLERS, type(self.activation))
        if handler is None:
            raise UnsupportedLayerError(f"activation {type(self.activation).__name__} of {name or 'ImplicitLayer'} "
                                        "has no lipsdp description")
        ctx = NodeContext(None, self.activation, 0, f"{name}.activation", (self.hidden,), (self.hidden,), (), {})
        acts = handler(ctx)
        if len(acts) != 1 or acts[0].in_dim != self.hidden:
            raise UnsupportedLayerError(f"activation {type(self.activation).__name__} does not lower to one "
                                        "activation layer")

        def np64(t):
            return t.detach().cpu().to(torch.float64).numpy().copy()

        d = np64(self.D.weight) if self.D is not None else None
        return Implicit(np64(self.W), np64(self.U.weight), np64(self.U.bias), np64(self.C.weight), d, acts[0],
                        out_bias=np64(self.C.bias), tol=self.tol, max_iter=self.max_iter, name=name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layer = self.to_lipsdp()
        x64 = x.detach().cpu().to(torch.float64).numpy().reshape(x.shape[0], -1)
        try:
            z_np = layer.equilibrium(x64, check=False)
        except EquilibriumError:
            layer.well_posedness()  # NotWellPosedError says why, when that is the reason
            raise
        z_star = torch.as_tensor(z_np, dtype=x.dtype, device=x.device)
        z = self._f(z_star, x)
        if z.requires_grad:
            def hook(grad):
                if grad is None:
                    return None

                def f_single(zz, xx):
                    return self._f(zz[None], xx[None])[0]

                jac = torch.func.vmap(torch.func.jacrev(f_single))(z_star, x.detach())
                eye = torch.eye(self.hidden, dtype=grad.dtype, device=grad.device)
                return torch.linalg.solve((eye - jac).transpose(1, 2), grad.unsqueeze(-1)).squeeze(-1)

            z.register_hook(hook)
        y = self.C(z)
        if self.D is not None:
            y = y + self.D(x)
        return y


def _extract(ctx):
    return [ctx.target.to_lipsdp(name=ctx.qualname)]


def _register() -> None:
    from .extract.torch import register_module_handler

    register_module_handler(ImplicitLayer, _extract)


_register()
