"""sciml: graph and scientific machine learning behind one API, one trainer and one data format.

Subpackages are imported lazily: ``import sciml`` is cheap and pulls in no model code.
"""
__version__ = "0.1.0"

__all__ = ["__version__"]
