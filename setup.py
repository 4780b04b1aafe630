"""What pyproject.toml cannot say: conf/ (kept at the top of the repo) ships as the package ``alsweep_conf``.

Installed from a wheel, the CLI reads its Hydra configs from that package;
from a checkout (editable or on PYTHONPATH) it reads conf/ directly. Third-party
configs can point at it as ``pkg://alsweep_conf``.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["strategies*", "kernels*", "experiments*"]), "alsweep_conf"],
    package_dir={"alsweep_conf": "conf"},
    package_data={"alsweep_conf": ["*.yaml", "**/*.yaml"], "strategies": ["versions.lock"]},
)
