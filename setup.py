"""The one packaging fact pyproject.toml cannot state beside package discovery: the report templates
live in the top-level ``templates/`` folder and install as the package ``dsocr_probe.templates``."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["dsocr_probe", "dsocr_probe.*"]), "dsocr_probe.templates"],
    package_dir={"dsocr_probe.templates": "templates"},
)
