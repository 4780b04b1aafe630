"""Benchmark every kernel against its float64 reference, in one run, as ratios.

    python benchmarks/bench_kernels.py                 # default sizes, CPU (or --device cuda)
    python benchmarks/bench_kernels.py --scale 0.05    # tiny sizes (what the test suite runs)
    python benchmarks/bench_kernels.py --json out.json

For each kernel: median wall time of the float32 chunked kernel and of the
float64 reference (tests/kernels/references.py) on the same input, their
ratio, the kernel's throughput, and the largest absolute difference between
the two. The machine is shared and noisy: compare ratios within one run,
never absolute seconds across runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from kernels import bayesian, history, kcenter, uncertainty  # noqa: E402
from tests.kernels import references  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(function: Callable[[], object], device: torch.device, repeats: int) -> float:
    function()  # warm-up: allocator, lazy init, kernel compilation
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _max_abs_diff(kernel_result, reference_result) -> float:
    if isinstance(kernel_result, torch.Tensor):
        return float((kernel_result.double().cpu() - reference_result.double().cpu()).abs().max())
    return float(kernel_result != reference_result)  # k-center: 0 when the picks agree


def build_cases(scale: float, device: torch.device) -> list[dict]:
    """(name, items, kernel, reference) for every kernel; sizes multiplied by ``scale``."""
    generator = torch.Generator().manual_seed(0)
    pool = max(int(200_000 * scale), 64)
    classes, samples, dim = 10, 20, 64
    probs = torch.softmax(2 * torch.randn(pool, classes, generator=generator), dim=1).to(device)
    mc_pool = max(pool // 4, 64)
    mc_log_probs = torch.log_softmax(2 * torch.randn(mc_pool, samples, classes, generator=generator), dim=2).to(device)
    kc_pool, kc_labelled, kc_picks = max(int(20_000 * scale), 64), max(int(1_000 * scale), 4), max(int(100 * scale), 4)
    emb = torch.randn(kc_pool, dim, generator=generator).to(device)
    labelled = torch.randn(kc_labelled, dim, generator=generator).to(device)
    rounds, hist_pool = 8, max(int(4_000 * scale), 64)  # the reference loops over samples in Python
    hist = torch.softmax(2 * torch.randn(rounds, hist_pool, classes, generator=generator), dim=2).half()
    observed = torch.rand(rounds, hist_pool, generator=generator) < 0.8

    def streamed_history():
        stats = history.HistoryStatistics.empty(hist_pool, classes, device)
        for t in range(rounds):
            stats.update(0, hist[t].to(device), observed[t].to(device))
        return stats

    cases = [
        {"name": f"{name} [N={pool}, C={classes}]", "items": pool,
         "kernel": (lambda fn=fn: fn(probs)),
         "reference": (lambda name=name: references.UNCERTAINTY[name](probs))}
        for name, fn in [
            ("entropy", uncertainty.entropy), ("least_confidence", uncertainty.least_confidence),
            ("margin", uncertainty.margin), ("ratio", uncertainty.ratio),
        ]
    ]
    cases += [
        {"name": f"bald [N={mc_pool}, K={samples}, C={classes}]", "items": mc_pool,
         "kernel": lambda: bayesian.bald(mc_log_probs), "reference": lambda: references.bald(mc_log_probs)},
        {"name": f"k-center greedy [N={kc_pool}, L={kc_labelled}, D={dim}, B={kc_picks}]", "items": kc_pool,
         "kernel": lambda: kcenter.greedy_k_center(emb, labelled, kc_picks)[0].tolist(),
         "reference": lambda: references.k_center(emb.cpu(), labelled.cpu(), kc_picks)},
        {"name": f"history tod+flip_rate [T={rounds}, N={hist_pool}, C={classes}]", "items": hist_pool * rounds,
         "kernel": lambda: (lambda s: torch.stack([history.temporal_output_discrepancy(s), history.flip_rate(s)]))(streamed_history()),
         "reference": lambda: torch.stack(references.history_scores(hist, observed))},
    ]
    return cases


def run(scale: float, device: torch.device, repeats: int) -> list[dict]:
    rows = []
    for case in build_cases(scale, device):
        kernel_seconds = median_seconds(case["kernel"], device, repeats)
        reference_seconds = median_seconds(case["reference"], device, max(1, repeats // 2))
        rows.append({
            "kernel": case["name"],
            "kernel_ms": 1e3 * kernel_seconds,
            "reference_ms": 1e3 * reference_seconds,
            "speedup_vs_float64_reference": reference_seconds / kernel_seconds,
            "kernel_items_per_s": case["items"] / kernel_seconds,
            "max_abs_diff": _max_abs_diff(case["kernel"](), case["reference"]()),
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every problem size (default 1.0)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    rows = run(args.scale, device, args.repeats)
    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} scale={args.scale}")
    header = f"{'kernel':<58} {'kernel ms':>10} {'float64 ref ms':>15} {'speed-up':>9} {'items/s':>10} {'max |diff|':>11}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['kernel']:<58} {row['kernel_ms']:>10.2f} {row['reference_ms']:>15.2f} "
            f"{row['speedup_vs_float64_reference']:>8.1f}x {row['kernel_items_per_s']:>10.3g} {row['max_abs_diff']:>11.2e}"
        )
    if args.json:
        args.json.write_text(json.dumps({"device": str(device), "scale": args.scale, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
