"""Packaging that setup.cfg cannot express: the bundles live at the top level (``bundles/``, the project's layout) and
the wheel carries them as the package data ``monai_nacl/bundles``; everything else is declared in setup.cfg."""

from setuptools import find_namespace_packages, setup

setup(
    packages=[*find_namespace_packages(include=["monai_nacl", "monai_nacl.*"]), "monai_nacl.bundles"],
    package_dir={"monai_nacl.bundles": "bundles"},
)
