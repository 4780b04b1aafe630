"""Diversity kernels over embeddings emb_N_D (k-center, BADGE, k-means, TypiClust, ProbCover, Cluster-Margin).

For the strategies added with issue 5 there are two rows each: the issue's target size
(time, floor, target; no reference, since a float64 or materialised reference at that size
takes minutes per call), and a reduced size timed against the float64 reference of
tests/kernels/references.py, whose disagreement is the fraction of picks not shared.
"""

from __future__ import annotations

import torch

from benchmarks.harness import Case
from kernels import kcenter
from strategies import PoolView, get_strategy
from tests.kernels import references


def cases(scale: float, device: torch.device) -> list[Case]:
    generator = torch.Generator().manual_seed(0)
    # issue 5 target: N = 100k, D = 128, L = 1000, B = 1000 in <= 3 s on 2 CPU cores
    pool, labelled, picks, dim = max(int(100_000 * scale), 64), max(int(1_000 * scale), 4), max(int(1_000 * scale), 4), 128
    emb = torch.randn(pool, dim, generator=generator).to(device)
    labelled_emb = torch.randn(labelled, dim, generator=generator).to(device)
    return [
        Case(
            name="k-center greedy", size=f"N={pool}, L={labelled}, D={dim}, B={picks}",
            run=lambda: kcenter.greedy_k_center(emb, labelled_emb, picks)[0].tolist(),
            reference=lambda: references.k_center_plain_torch(emb, labelled_emb, picks),
            disagreement=lambda got, expected: 1.0 - len(set(got) & set(expected)) / max(1, len(set(got) | set(expected))),
            flops=2.0 * pool * dim * (labelled + picks), bytes_read=4.0 * pool * dim * picks,
            target_s=3.0, repeats=1,
            notes="reference: plain torch, float64, one min-distance vector (not a loop over samples); disagreement = 1 - Jaccard of picks",
        ),
    ] + diversity_strategy_cases(scale, device)


def embeddings(num_rows: int, dim: int, num_blobs: int, seed: int) -> torch.Tensor:
    """Clustered, non-negative, offset embeddings like a ReLU penultimate layer's."""
    generator = torch.Generator().manual_seed(seed)
    centres = 3.0 * torch.randn(num_blobs, dim, generator=generator)
    which = torch.randint(num_blobs, (num_rows,), generator=generator)
    return (centres[which] + torch.randn(num_rows, dim, generator=generator)).relu_()


def probabilities(num_rows: int, num_classes: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.softmax(2.0 * torch.randn(num_rows, num_classes, generator=generator), dim=1)


def pick_disagreement(result: object, reference: object) -> float:
    """Fraction of the reference's picks that the kernel did not make (0 = same set)."""
    got, expected = set(result), set(reference)
    return 1.0 - len(got & expected) / max(1, len(expected))


def _call(name: str, pool: PoolView, query_size: int, **params):
    return lambda: get_strategy(name)(pool, query_size, generator=torch.Generator().manual_seed(0), **params).indices_B.tolist()


def diversity_strategy_cases(scale: float, device: torch.device) -> list[Case]:
    dim, classes = 128, 10
    rows = []

    # ---- target sizes (public strategy call, validation included) ----
    n, b = max(int(50_000 * scale), 64), max(int(1_000 * scale), 4)
    badge_pool = PoolView(
        pool_ids_N=torch.arange(n, device=device),
        probs_N_C=probabilities(n, classes, 1).to(device), emb_N_D=embeddings(n, dim, 100, 1).to(device),
    )
    rows.append(Case(
        name="badge", size=f"N={n}, D={dim}, C={classes} (grad dim {dim * classes}), B={b}",
        run=_call("badge", badge_pool, b), flops=2.0 * n * (dim + classes) * b,
        bytes_read=4.0 * n * (dim + classes) * b, target_s=3.0, repeats=1,
        notes="per pick one [N,D] and one [N,C] matvec; memory-bound",
    ))
    n, b, l = max(int(100_000 * scale), 64), max(int(1_000 * scale), 4), max(int(1_000 * scale), 4)
    big_emb = embeddings(n, dim, 100, 2).to(device)
    big_labelled = embeddings(l, dim, 100, 3).to(device)
    big_pool = PoolView(pool_ids_N=torch.arange(n, device=device), emb_N_D=big_emb, labelled_emb_L_D=big_labelled)
    iters = 10
    rows.append(Case(
        name="kmeans", size=f"N={n}, D={dim}, B={b}, <= {iters} Lloyd iterations",
        run=_call("kmeans", big_pool, b), flops=2.0 * n * dim * b * (iters + 1),
        bytes_read=4.0 * n * dim * b, target_s=5.0, repeats=1,
        notes="floor: Lloyd FLOPs at max_iter (k-means++ seeding reads N*D per centre)",
    ))
    k = min(b + l, 500)
    rows.append(Case(
        name="typiclust", size=f"N={n}, L={l}, D={dim}, B={b} ({k} clusters)",
        run=_call("typiclust", big_pool, b), flops=2.0 * (n + l) * dim * k * (iters + 1) + 2.0 * (n + l) ** 2 * dim / k,
        bytes_read=4.0 * (n + l) * dim * k, target_s=5.0, repeats=1,
        notes="floor: Lloyd FLOPs + within-cluster kNN at equal cluster sizes",
    ))
    rows.append(Case(
        name="probcover", size=f"N={n}, L={l}, D={dim}, B={b}, delta=auto",
        run=_call("probcover", big_pool, b), flops=1.0 * n * n * dim + 2.0 * 5_000 * (n + l) * dim,
        target_s=5.0, repeats=1,
        notes="floor: the ball graph's N^2/2 pair distances (2D FLOPs each; symmetric, so half the N x N)",
    ))
    cm_pool = PoolView(
        pool_ids_N=torch.arange(n, device=device), probs_N_C=probabilities(n, classes, 4).to(device), emb_N_D=big_emb
    )
    hac_n = min(2_000, n)
    rows.append(Case(
        name="cluster_margin (round 0: HAC)", size=f"N={n}, D={dim}, B={b}, HAC on {hac_n}",
        run=_call("cluster_margin", cm_pool, b), flops=2.0 * hac_n * hac_n * dim + 2.0 * n * dim * 50,
        bytes_read=4.0 * hac_n * hac_n * hac_n / 2, repeats=1,
        notes="floor: HAC reads a shrinking n x n matrix once per merge",
    ))

    # ---- reduced sizes against the float64 references ----
    n, b, l = max(int(4_000 * scale), 48), max(int(100 * scale), 4), max(int(100 * scale), 4)
    probs, emb, lab = probabilities(n, classes, 5), embeddings(n, 32, 20, 5), embeddings(l, 32, 20, 6)
    ref_pool = PoolView(
        pool_ids_N=torch.arange(n, device=device), probs_N_C=probs.to(device),
        emb_N_D=emb.to(device), labelled_emb_L_D=lab.to(device),
    )
    seed = lambda: torch.Generator().manual_seed(0)  # noqa: E731

    def kmeans_reference():
        seeds = references.kmeans_plus_plus(emb, b, seed())
        assignment = references.lloyd_until(emb, emb[seeds], 10, 1e-4)
        centres = torch.stack([emb.double()[assignment == m].mean(0) for m in range(b)])
        return references.nearest_member_per_cluster(emb, centres, assignment)

    rows += [
        Case(name="badge vs float64", size=f"N={n}, D=32, C={classes}, B={b}", run=_call("badge", ref_pool, b),
             reference=lambda: references.badge(probs, emb, b, seed()), disagreement=pick_disagreement,
             flops=2.0 * n * (32 + classes) * b, repeats=3),
        Case(name="kmeans vs float64", size=f"N={n}, D=32, B={b}", run=_call("kmeans", ref_pool, b),
             reference=kmeans_reference, disagreement=pick_disagreement, flops=2.0 * n * 32 * b * 11, repeats=3),
        Case(name="typiclust vs float64", size=f"N={n}, L={l}, D=32, B={b}", run=_call("typiclust", ref_pool, b),
             reference=lambda: references.typiclust(emb, lab, b, seed()), disagreement=pick_disagreement,
             flops=2.0 * (n + l) * 32 * (b + l) * 11, repeats=3),
        Case(name="probcover vs float64", size=f"N={n}, L={l}, D=32, B={b}, delta=3",
             run=_call("probcover", ref_pool, b, delta=3.0, normalize=False),
             reference=lambda: references.probcover(emb, lab, 3.0, b), disagreement=pick_disagreement,
             flops=2.0 * n * n * 32, repeats=3),
    ]
    return rows
