"""The network description (stage 2 of the data flow): plain, validated, float64."""

from . import activations
from .activations import ActivationSpec, slope_interval
from .layers import Activation, ActivationLayer, Affine, Layer
from .group import GroupActivation, group_sort, householder, max_min
from .network import Chain, Network
from .implicit import Implicit
from .residual import Residual

__all__ = ["activations", "ActivationSpec", "slope_interval", "Activation", "ActivationLayer", "GroupActivation", "max_min", "group_sort", "householder", "Affine", "Layer", "Chain", "Network", "Residual", "Implicit"]
