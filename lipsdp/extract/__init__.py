"""Extractors (stage 1): trained models -> :class:`lipsdp.network.Network`.

``extract(model)`` accepts a :class:`~lipsdp.network.Network` (returned as is), a
``torch.nn.Module`` (:mod:`lipsdp.extract.torch`), or a path to a model file
(``.onnx`` through :mod:`lipsdp.extract.onnx` when available; ``.mat`` weight files of
the LipSDP-NSR paper through :func:`lipsdp.extract.mat.from_mat`).
"""

from __future__ import annotations

import os
import sys

from ..errors import InvalidNetworkError, UnsupportedLayerError
from ..network.network import Network


def _is_torch_module(obj) -> bool:
    # an object can only be a torch module if torch is already imported: no import (~1 s) for a file path
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def extract(model, input_shape=None) -> Network:
    """Lower ``model`` to a Network (see module docstring)."""
    if isinstance(model, Network):
        return model
    if _is_torch_module(model):
        from .torch import from_torch

        return from_torch(model, input_shape=input_shape)
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no such model file: {path}")
        ext = os.path.splitext(path)[1].lower()
        if ext == ".onnx":
            try:
                from .onnx import from_onnx
            except ImportError as exc:
                raise UnsupportedLayerError(f"ONNX models need the onnx extra: {exc}") from exc
            return from_onnx(path)
        if ext == ".mat":
            from .mat import from_mat

            return from_mat(path)
        raise UnsupportedLayerError(f"unsupported model file type '{ext}' ({path})")
    raise InvalidNetworkError(
        f"cannot extract a network from {type(model).__name__}; pass a torch.nn.Module, a lipsdp.Network "
        "or a path to an .onnx file"
    )


__all__ = ["extract"]
