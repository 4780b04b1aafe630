"""Selectors turn per-sample scores into B pool positions.

Scoring (kernels) and choosing (here) are separate, so any score can be
combined with any selector. Stochastic selectors take an explicit
``torch.Generator`` and never touch the global RNG.
"""

from __future__ import annotations

import torch

from strategies.pool_view import Selection


def _uniform_like(scores_N: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """U(0, 1) draws from ``generator`` on the generator's device, moved to the scores' device."""
    draws = torch.rand(scores_N.shape[0], generator=generator, device=generator.device, dtype=torch.float64)
    return draws.to(scores_N.device)


def topk(scores_N: torch.Tensor, query_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Positions of the ``min(B, N)`` highest scores, best first.

    With a ``generator``, equal scores are ordered uniformly at random (scores
    such as flip counts tie often, and torch.topk's own order would favour
    whatever comes first in the dataset); without one, torch.topk decides.
    """
    num_picks = min(query_size, scores_N.shape[0])
    if generator is None:
        return torch.topk(scores_N.float(), num_picks, sorted=True).indices
    shuffle_N = torch.randperm(scores_N.shape[0], generator=generator, device=generator.device).to(scores_N.device)
    return shuffle_N[torch.topk(scores_N.float()[shuffle_N], num_picks, sorted=True).indices]


def select_top(scores_N: torch.Tensor, query_size: int, generator: torch.Generator) -> Selection:
    """A `Selection` of the top-B scores (random tie order), keeping ``scores_N``."""
    return Selection(topk(scores_N, query_size, generator), scores_N)


def sample_without_replacement(log_weights_N: torch.Tensor, query_size: int, generator: torch.Generator) -> torch.Tensor:
    """Draw ``min(B, N)`` positions without replacement, P(i) proportional to exp(log_weights_N[i]).

    Gumbel-top-k: the top-B of log w_i + Gumbel noise is an exact sample of
    successive draws without replacement (Kool et al. 2019, arXiv:1903.06059).
    Samples with weight 0 (log w = -inf) come last, in arbitrary order.
    """
    uniform = _uniform_like(log_weights_N, generator).clamp_(min=1e-300)
    gumbel = -torch.log(-torch.log(uniform))
    keys = log_weights_N.double() + gumbel
    return torch.topk(keys, min(query_size, log_weights_N.shape[0]), sorted=True).indices


def power_sampling(scores_N: torch.Tensor, query_size: int, beta: float, generator: torch.Generator) -> torch.Tensor:
    """Sample ∝ score^β (scores clamped at 0). Kirsch et al. 2023, "Stochastic Batch Acquisition"."""
    return sample_without_replacement(beta * torch.log(scores_N.double().clamp(min=0.0)), query_size, generator)


def softmax_sampling(scores_N: torch.Tensor, query_size: int, beta: float, generator: torch.Generator) -> torch.Tensor:
    """Sample ∝ exp(β·score). Kirsch et al. 2023, "Stochastic Batch Acquisition"."""
    return sample_without_replacement(beta * scores_N.double(), query_size, generator)


def uniform_sampling(pool_size: int, query_size: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``min(B, N)`` positions uniformly without replacement."""
    permutation = torch.randperm(pool_size, generator=generator, device=generator.device)
    return permutation[: min(query_size, pool_size)].to(device)
