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
    whatever comes first in the dataset): which of the samples tied at the top-B
    boundary get in is a uniform draw among all of them, and samples tied inside
    the top-B come in random order. The draws are over those tied samples only,
    never a permutation of the whole pool; without a generator, torch.topk decides.
    """
    num_picks = min(query_size, scores_N.shape[0])
    scores_N = scores_N.float()
    if generator is None or num_picks == 0:
        return torch.topk(scores_N, num_picks, sorted=True).indices
    # one more than B: ties cross the boundary only if the (B+1)-th score equals the B-th,
    # so the common case needs no pass over N beyond torch.topk's own
    values, indices = torch.topk(scores_N, min(num_picks + 1, scores_N.shape[0]), sorted=True)
    indices_B = indices[:num_picks].clone()
    boundary = values[num_picks - 1]
    if values.shape[0] > num_picks and bool(values[num_picks] == boundary):  # one host sync per call
        inside = int((values[:num_picks] == boundary).sum())
        tied_at_boundary = (scores_N == boundary).nonzero().squeeze(1)
        draw = torch.randperm(tied_at_boundary.numel(), generator=generator, device=generator.device)
        indices_B[num_picks - inside :] = tied_at_boundary[draw[:inside].to(scores_N.device)]
    # random order within every group of equal values: sort by a random key, then stably by value
    keys_B = torch.rand(num_picks, generator=generator, device=generator.device).to(scores_N.device)
    indices_B = indices_B[keys_B.argsort()]
    return indices_B[torch.sort(scores_N[indices_B], descending=True, stable=True).indices]


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
    """Sample ∝ score^β (scores clamped at 0; 0^0 = 1, so β = 0 is uniform).

    Kirsch et al. 2023, "Stochastic Batch Acquisition", TMLR, arXiv:2106.12059.
    """
    if beta == 0:
        # β·log 0 = 0·(−inf) is NaN; score^0 = 1 for every sample, zero scores included
        return sample_without_replacement(torch.zeros_like(scores_N, dtype=torch.float64), query_size, generator)
    return sample_without_replacement(beta * torch.log(scores_N.double().clamp(min=0.0)), query_size, generator)


def softmax_sampling(scores_N: torch.Tensor, query_size: int, beta: float, generator: torch.Generator) -> torch.Tensor:
    """Sample ∝ exp(β·score) (β = 0 is uniform). Kirsch et al. 2023, "Stochastic Batch Acquisition"."""
    return sample_without_replacement(beta * scores_N.double(), query_size, generator)


def uniform_sampling(pool_size: int, query_size: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``min(B, N)`` positions uniformly without replacement."""
    permutation = torch.randperm(pool_size, generator=generator, device=generator.device)
    return permutation[: min(query_size, pool_size)].to(device)
