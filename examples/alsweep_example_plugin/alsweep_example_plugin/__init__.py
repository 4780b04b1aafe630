"""An example alsweep plugin: the strategy ``power_margin`` (see strategies.py)."""
