"""The kernel benchmark runs, covers every kernel family, and its kernels agree with the references."""

from __future__ import annotations

import json

from benchmarks import bench_kernels
from benchmarks.cases import FAMILIES


def test_benchmark_covers_every_family_and_matches_references(tmp_path):
    out, markdown = tmp_path / "bench.json", tmp_path / "bench.md"
    assert bench_kernels.main(
        ["--scale", "0.005", "--repeats", "1", "--device", "cpu", "--json", str(out), "--markdown", str(markdown)]
    ) == 0
    report = json.loads(out.read_text())
    assert report["read_GB_per_s"] > 0 and report["matmul_GFLOP_per_s"] > 0 and report["logs_G_per_s"] > 0
    names = " ".join(row["name"] for row in report["rows"])
    for kernel in ("entropy", "least_confidence", "margin", "ratio", "bald", "k-center", "history"):
        assert kernel in names
    for row in report["rows"]:
        assert row["seconds"] > 0
        if "disagreement" in row:
            assert row["disagreement"] < 1e-4, row
        if row["floor_seconds"] > 0:
            assert row["times_floor"] > 0
    assert markdown.read_text().count("\n|") == len(report["rows"]) + 2


def test_every_family_module_exposes_cases():
    import importlib

    for family in FAMILIES:
        assert callable(importlib.import_module(f"benchmarks.cases.{family}").cases)
