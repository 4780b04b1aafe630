"""Benchmark cases, one module per kernel family; each exposes ``cases(scale, device) -> list[Case]``.

Sizes are the issue's target sizes at ``scale=1``; the test suite runs them tiny.
"""

FAMILIES = ("uncertainty", "bayesian", "batch_bayesian", "diversity", "history")
