"""lipsdp: certified upper bounds on the Lipschitz constant of neural networks by semidefinite programming.

Quick start::

    import lipsdp
    result = lipsdp.estimate(model, norm="l2")      # torch module, .onnx path or lipsdp.Network
    print(result.summary())
    result.bound        # certified upper bound (None if it could not be certified)

Data flow (one subpackage per stage): ``extract`` -> ``network`` -> ``constraints`` ->
``sdp`` -> ``solvers`` -> ``certify`` -> ``api`` / ``cli``; ``bounds`` holds the naive and
empirical lower bounds.
"""

from .api import METHODS, estimate
from .bounds.region import Ball, Box, RegionError
from .errors import (InfeasibleSDPError, InvalidNetworkError, LipSDPError, NotWellPosedError, ProblemTooLargeError,
                     SolverLicenseError, SolverUnavailableError, TrainModeError, UnsupportedLayerError,
                     UnsupportedNormError, SlopeRefutedError)
from .extract import extract
from .extract.custom import register_activation, unregister_activation
from .network import Activation, ActivationSpec, Affine, Network, activations
from .result import STATUSES, LipschitzResult
from .robustness import RadiusResult, certified_radius
from .solvers import available_solvers

__version__ = "0.1.0"

__all__ = [
    "estimate", "extract", "register_activation", "unregister_activation", "Box", "Ball", "RegionError", "certified_radius", "RadiusResult", "METHODS", "LipschitzResult", "STATUSES", "Network", "Affine", "Activation",
    "ActivationSpec", "activations", "available_solvers",
    "LipSDPError", "InvalidNetworkError", "UnsupportedLayerError", "TrainModeError", "NotWellPosedError",
    "SolverUnavailableError", "SolverLicenseError", "InfeasibleSDPError", "ProblemTooLargeError",
    "UnsupportedNormError", "SlopeRefutedError",
]
