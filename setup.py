"""Ships ``conf/`` inside the package as ``lsx/conf`` so a non-editable ``pip install .`` finds its
configs (the rest of the metadata is in pyproject.toml). In a source checkout lsx reads the
top-level ``conf/`` directly (see ``lsx.config.CONF_DIR``). Each config group folder is listed as a
package of its own (``lsx.conf.model``, ...): setuptools warns about data folders it was not told of."""
from setuptools import find_namespace_packages, setup

conf_groups = [f"lsx.conf.{p}" for p in find_namespace_packages(where="conf")]
setup(
    packages=find_namespace_packages(include=["lsx", "lsx.*"]) + ["lsx.conf", *conf_groups],
    package_dir={"lsx.conf": "conf"},
    package_data={"lsx.conf": ["*.yaml"], **{g: ["*.yaml"] for g in conf_groups}},
)
