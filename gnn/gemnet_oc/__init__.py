"""GemNet-OC (Gasteiger et al., TMLR 2022): energies and forces of catalyst-scale periodic structures.

See docs/gemnet_oc.md. Graphs and index sets live in :mod:`sciml.gnn.atomistic_graph`.
"""
from sciml.gnn.gemnet_oc.bases import (CircularBasis, GaussianBasis, PolynomialEnvelope, RadialBasis,
                                       SphericalBasis, SphericalBesselBasis, legendre, zonal_harmonics)
from sciml.gnn.gemnet_oc.layers import ScaleFactor, fit_scale_factors, load_scale_factors, save_scale_factors
from sciml.gnn.gemnet_oc.model import BASE_CONFIG, LARGE_CONFIG, GemNetOC

__all__ = ["GemNetOC", "BASE_CONFIG", "LARGE_CONFIG", "ScaleFactor", "fit_scale_factors",
           "save_scale_factors", "load_scale_factors", "RadialBasis",
           "PolynomialEnvelope", "GaussianBasis", "SphericalBesselBasis", "CircularBasis", "SphericalBasis",
           "legendre", "zonal_harmonics"]
