"""Baseline strategies."""

from __future__ import annotations

import torch

from strategies.pool_view import PoolView, Selection
from strategies.registry import register_strategy
from strategies.selectors import uniform_sampling


@register_strategy(name="random", version="1.0", needs=(), batch_aware=False, paper="uniform sampling baseline")
def random(pool: PoolView, query_size: int, *, generator: torch.Generator) -> Selection:
    """B pool positions uniformly at random without replacement; no scores."""
    return Selection(uniform_sampling(pool.size, query_size, generator, pool.device))
