"""Certification (stage 6): every bound is proved in float64 before it is reported."""

from .certify import Certificate, certify, exact_rho
from .psd import PSDCheck, gamma, verify_psd

__all__ = ["Certificate", "certify", "exact_rho", "PSDCheck", "gamma", "verify_psd"]
