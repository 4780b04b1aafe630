"""alsweep's Hydra config tree, installed as the package ``alsweep_conf`` (see setup.py)."""
