"""Benchmark every kernel in one run: time, machine floor, ratio to the floor, speed-up over a reference.

    python benchmarks/bench_kernels.py                          # the issues' target sizes, CPU
    python benchmarks/bench_kernels.py --device cuda
    python benchmarks/bench_kernels.py --only bayesian,history  # some families
    python benchmarks/bench_kernels.py --scale 0.01             # tiny sizes (what the test suite runs)
    python benchmarks/bench_kernels.py --device cuda --backends torch,cupy --scale 10   # torch vs fused CuPy
    python benchmarks/bench_kernels.py --json out.json --markdown out.md

The floors (read bandwidth, fp32 matmul rate, log rate) are measured in the same
run. The machine is shared and noisy: compare ratios within one run, never
absolute seconds across runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from benchmarks.cases import FAMILIES  # noqa: E402
from benchmarks.harness import measure_floors, render_markdown, run_cases, write_reports  # noqa: E402
from kernels.backend import BACKENDS, use_backend  # noqa: E402


def collect_cases(families: list[str], scale: float, device: torch.device) -> list:
    cases = []
    for family in families:
        cases += importlib.import_module(f"benchmarks.cases.{family}").cases(scale, device)
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every problem size (default 1.0)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", default=",".join(FAMILIES), help=f"comma-separated families of: {', '.join(FAMILIES)}")
    parser.add_argument(
        "--backends", default="auto",
        help=f"comma-separated kernel backends to time every case under, of: {', '.join(BACKENDS)} (default auto)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table as Markdown here")
    args = parser.parse_args(argv)
    families = [family.strip() for family in args.only.split(",") if family.strip()]
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        parser.error(f"--only: unknown family '{unknown[0]}'; valid: {', '.join(FAMILIES)}")
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        parser.error(f"--backends: unknown backend '{unknown[0]}'; valid: {', '.join(BACKENDS)}")
    device = torch.device(args.device)
    floors = measure_floors(device, args.scale)
    header = {
        "device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(), "scale": args.scale,
        "read_GB_per_s": round(floors.read_bytes_per_s / 1e9, 2),
        "matmul_GFLOP_per_s": round(floors.matmul_flops_per_s / 1e9, 1),
        "logs_G_per_s": round(floors.logs_per_s / 1e9, 3),
    }
    rows = []
    for backend in backends:
        with use_backend(backend):
            cases = collect_cases(families, args.scale, device)
            for row in run_cases(cases, device, floors, args.repeats):
                rows.append({**row, "name": f"{row['name']} [{backend}]" if len(backends) > 1 else row["name"], "backend": backend})
    print(render_markdown(rows, header))
    write_reports(rows, header, args.json, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
