"""Torch modules lipsdp extracts and bounds: group activations and the implicit layer.

* :class:`MaxMin` (pairs -> (max, min)), :class:`GroupSort` (groups of ``group_size`` sorted),
  :class:`HouseholderActivation` (z if v^T z > 0 else (I - 2 v v^T / v^T v) z, per group);
* :class:`ImplicitLayer` (from :mod:`lipsdp.nn_implicit`).

Grouping (``grouping=``): ``"consecutive"`` (neurons i g .. i g + g - 1 form group i, e.g.
adjacent pairs) or ``"halves"`` (group i is neurons i, i + G, i + 2G, ...: first half against
second half for pairs). Sorting order: ``descending=True`` puts the maximum first (MaxMin's
default), ``descending=False`` the minimum (GroupSort's default, like ``torch.sort``,
deel-torchlip and monotonicnetworks). The modules act on dimension 1 of (N, C) or (N, C, ...)
inputs; lipsdp bounds them on flat (N, C) features. The exact semantics are those of
:class:`lipsdp.network.group.GroupActivation`, which :func:`lipsdp.extract` produces from them.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .nn_implicit import ImplicitLayer

__all__ = ["MaxMin", "GroupSort", "HouseholderActivation", "ImplicitLayer"]

_GROUPINGS = ("consecutive", "halves")


def _grouped(x: torch.Tensor, g: int, grouping: str) -> torch.Tensor:
    """(N, C, *) -> (N, G, g, *) view of the groups along dim 1."""
    n = x.shape[1]
    if n % g:
        raise ValueError(f"the number of channels ({n}) must be a multiple of the group size ({g})")
    rest = x.shape[2:]
    if grouping == "consecutive":
        return x.reshape(x.shape[0], n // g, g, *rest)
    return x.reshape(x.shape[0], g, n // g, *rest).transpose(1, 2)


def _ungrouped(y: torch.Tensor, grouping: str) -> torch.Tensor:
    if grouping == "consecutive":
        return y.reshape(y.shape[0], -1, *y.shape[3:])
    return y.transpose(1, 2).reshape(y.shape[0], -1, *y.shape[3:])


class GroupSort(nn.Module):
    """Sort each group of ``group_size`` channels (ascending unless ``descending``)."""

    def __init__(self, group_size: int = 2, grouping: str = "consecutive", descending: bool = False):
        super().__init__()
        if grouping not in _GROUPINGS:
            raise ValueError(f"grouping must be one of {_GROUPINGS}, got {grouping!r}")
        if int(group_size) < 2:
            raise ValueError(f"group size must be at least 2, got {group_size}")
        self.group_size = int(group_size)
        self.grouping = grouping
        self.descending = bool(descending)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.sort(_grouped(x, self.group_size, self.grouping), dim=2, descending=self.descending).values
        return _ungrouped(y, self.grouping)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, grouping={self.grouping!r}, descending={self.descending}"


class MaxMin(GroupSort):
    """Each pair (a, b) -> (max(a, b), min(a, b)) (``descending=False``: (min, max))."""

    def __init__(self, grouping: str = "consecutive", descending: bool = True):
        super().__init__(2, grouping, descending)


class HouseholderActivation(nn.Module):
    """Per group z -> z if v^T z > 0 else z - 2 v (v^T z) / (v^T v).

    ``v``: one vector of length g for every group, or a (G, g) tensor (one per group).
    ``learnable=True`` makes it a parameter.
    """

    def __init__(self, v, grouping: str = "consecutive", learnable: bool = False):
        super().__init__()
        if grouping not in _GROUPINGS:
            raise ValueError(f"grouping must be one of {_GROUPINGS}, got {grouping!r}")
        v = torch.as_tensor(v, dtype=torch.get_default_dtype())
        if v.ndim not in (1, 2) or v.shape[-1] < 2:
            raise ValueError(f"v must have shape (g,) or (G, g) with g >= 2, got {tuple(v.shape)}")
        if not torch.all(torch.sum(v * v, dim=-1) > 0):
            raise ValueError("v must be nonzero")
        self.grouping = grouping
        if learnable:
            self.v = nn.Parameter(v.clone())
        else:
            self.register_buffer("v", v.clone())

    @property
    def group_size(self) -> int:
        return int(self.v.shape[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = _grouped(x, self.group_size, self.grouping)  # (N, G, g, *)
        v = self.v.to(z.dtype)
        if v.ndim == 1:
            v = v.expand(z.shape[1], -1)
        v = v.reshape(1, v.shape[0], v.shape[1], *([1] * (z.ndim - 3)))
        vz = torch.sum(z * v, dim=2, keepdim=True)
        refl = z - 2.0 * v * vz / torch.sum(v * v, dim=2, keepdim=True)
        return _ungrouped(torch.where(vz > 0, z, refl), self.grouping)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, grouping={self.grouping!r}"
