"""Hydra configs of the plugin, found with ``hydra.searchpath=[pkg://alsweep_example_plugin.conf]``."""
