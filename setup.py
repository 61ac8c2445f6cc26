"""Map the top-level folders gnn/, operators/ and datasets/ to sciml.gnn, sciml.operators and sciml.datasets.

The package list is computed, so a new subpackage can never be silently left out of the wheel
(an editable install would hide that; see docs/architecture.md, "Packaging").
"""
from setuptools import find_packages, setup

ROOTS = {"sciml": "sciml", "sciml.gnn": "gnn", "sciml.operators": "operators", "sciml.datasets": "datasets"}

packages = []
for name, folder in ROOTS.items():
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(folder)]

setup(package_dir=ROOTS, packages=packages)
