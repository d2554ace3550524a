"""Ships ``conf/`` inside the package as ``lsx/conf`` so a non-editable ``pip install .`` finds its
configs (the rest of the metadata is in pyproject.toml). In a source checkout lsx reads the
top-level ``conf/`` directly (see ``lsx.config.CONF_DIR``)."""
from setuptools import find_namespace_packages, setup

setup(
    packages=find_namespace_packages(include=["lsx", "lsx.*"]) + ["lsx.conf"],
    package_dir={"lsx.conf": "conf"},
    package_data={"lsx.conf": ["*.yaml", "**/*.yaml"]},
)
