"""Exceptions raised by lipsdp.

Every failure a user can cause has its own class, so callers can catch exactly
what they expect and the message can say precisely what went wrong. All of
them derive from :class:`LipSDPError`. Raising one never leaves anything half
done: extraction and validation happen before any state is created.
"""

from __future__ import annotations


class LipSDPError(Exception):
    """Base class of every error lipsdp raises on purpose."""


class InvalidNetworkError(LipSDPError, ValueError):
    """The network description is malformed: NaN/inf weights, shape mismatch, empty network."""


class UnsupportedLayerError(LipSDPError, TypeError):
    """A layer, module, function or ONNX op has no sound quadratic constraint or linear form.

    The message names the layer's type and its position in the model.
    """


class TrainModeError(LipSDPError, ValueError):
    """A BatchNorm or Dropout module is in training mode; call ``model.eval()`` first."""


class NotWellPosedError(LipSDPError, ValueError):
    """An implicit (equilibrium) model fails the well-posedness condition the SDP needs."""


class SolverUnavailableError(LipSDPError, RuntimeError):
    """The requested SDP backend is not installed (or not usable on this machine)."""


class SolverLicenseError(SolverUnavailableError):
    """The requested backend is installed but has no valid license (MOSEK)."""


class InfeasibleSDPError(LipSDPError, RuntimeError):
    """The SDP was reported infeasible and no certified bound could be recovered."""


class ProblemTooLargeError(LipSDPError, MemoryError):
    """The LMI would need more memory than this machine has; the message gives sizes and options."""


class UnsupportedNormError(LipSDPError, ValueError):
    """The requested norm is not supported for this network/method."""


class EquilibriumError(LipSDPError, ArithmeticError):
    """The equilibrium of an implicit layer was not found to the stated tolerance."""


class SlopeRefutedError(LipSDPError, ValueError):
    """A user-declared slope interval of an activation is contradicted by sampling its forward."""
