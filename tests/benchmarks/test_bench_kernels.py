"""The kernel benchmark runs, covers every kernel, and its kernels agree with the references."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_kernels.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_kernels", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_covers_every_kernel_and_matches_references(tmp_path):
    bench = load_bench()
    out = tmp_path / "bench.json"
    assert bench.main(["--scale", "0.02", "--repeats", "1", "--device", "cpu", "--json", str(out)]) == 0
    rows = __import__("json").loads(out.read_text())["rows"]
    names = " ".join(row["kernel"] for row in rows)
    for kernel in ("entropy", "least_confidence", "margin", "ratio", "bald", "k-center", "history"):
        assert kernel in names
    for row in rows:
        assert row["max_abs_diff"] < 1e-4, row
        assert row["kernel_ms"] > 0 and row["reference_ms"] > 0
