"""The benchmark harness: cases, machine floors measured in the same run, and the report.

A `Case` is one workload: the timed call (a kernel, or the public strategy call),
optionally a plain-torch reference for the speed-up and agreement columns, and the
work it must do at the least (bytes read, FLOPs, logarithms). `measure_floors`
measures this machine's read bandwidth, fp32 matmul rate and log rate in the same
run, so every row reports its time as a ratio to what the hardware allows. The
machine is shared and noisy: compare ratios within one run, never seconds across runs.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch


@dataclass
class Case:
    """One benchmark workload.

    Attributes:
        name: the kernel or strategy, e.g. ``"bald"``.
        size: the problem size in words, e.g. ``"N=100000, K=20, C=10"``.
        run: the timed call.
        reference: a plain torch implementation of the same thing (float64 where it matters), or None.
        disagreement: measure of how far ``run()``'s result is from ``reference()``'s (default: max |diff|).
        bytes_read: bytes the call must read at the least (memory floor).
        flops: floating-point operations it must do at the least (compute floor).
        logs: logarithms/exponentials it must evaluate at the least (transcendental floor).
        target_s: the issue's target time for this workload on 2 CPU cores, if any.
        repeats: timed repetitions (None: the run's default); the median is reported.
    """

    name: str
    size: str
    run: Callable[[], object]
    reference: Callable[[], object] | None = None
    disagreement: Callable[[object, object], float] | None = None
    bytes_read: float = 0.0
    flops: float = 0.0
    logs: float = 0.0
    target_s: float | None = None
    repeats: int | None = None
    notes: str = ""


@dataclass
class Floors:
    """This machine's rates, measured in the run: bytes/s, FLOP/s, logs/s."""

    read_bytes_per_s: float
    matmul_flops_per_s: float
    logs_per_s: float
    details: dict = field(default_factory=dict)

    def seconds(self, case: Case) -> float:
        """The time below which ``case`` cannot run: the largest of its three floors."""
        return max(
            case.bytes_read / self.read_bytes_per_s,
            case.flops / self.matmul_flops_per_s,
            case.logs / self.logs_per_s,
        )


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(function: Callable[[], object], device: torch.device, repeats: int) -> float:
    function()  # warm-up: allocator, lazy init, kernel compilation
    synchronize(device)
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        function()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_floors(device: torch.device, scale: float = 1.0) -> Floors:
    """Read bandwidth (a sum over a large buffer; on CUDA a device-to-device copy), matmul and log rates."""
    elements = max(int(64 * 2**20 * min(scale, 1.0)), 2**20)  # 256 MB of float32 at scale 1
    buffer = torch.rand(elements, device=device)
    if device.type == "cuda":
        target = torch.empty_like(buffer)
        copy_s = median_seconds(lambda: target.copy_(buffer), device, 5)
        read_rate = buffer.numel() * buffer.element_size() / copy_s  # each byte read once (and written once)
    else:
        read_s = median_seconds(lambda: buffer.sum(), device, 5)
        read_rate = buffer.numel() * buffer.element_size() / read_s
    side = 2048 if device.type == "cpu" else 8192
    a = torch.randn(side, side, device=device)
    b = torch.randn(side, side, device=device)
    matmul_s = median_seconds(lambda: a @ b, device, 3)
    log_input = buffer[: elements // 4] + 0.5
    log_s = median_seconds(lambda: torch.log(log_input), device, 5)
    return Floors(
        read_bytes_per_s=read_rate,
        matmul_flops_per_s=2 * side**3 / matmul_s,
        logs_per_s=log_input.numel() / log_s,
        details={"read_buffer_bytes": buffer.numel() * 4, "matmul_side": side, "log_elements": log_input.numel()},
    )


def max_abs_difference(result: object, reference: object) -> float:
    """Largest |a − b| over tensors (or tuples of tensors); for anything else 0 if equal else 1."""
    if isinstance(result, torch.Tensor):
        return float((result.double().cpu() - torch.as_tensor(reference).double().cpu()).abs().max()) if result.numel() else 0.0
    if isinstance(result, (tuple, list)) and result and isinstance(result[0], torch.Tensor):
        return max(max_abs_difference(a, b) for a, b in zip(result, reference))
    return float(result != reference)


def run_cases(cases: list[Case], device: torch.device, floors: Floors, repeats: int) -> list[dict]:
    """Time every case; one row each, with its floor, ratios and agreement."""
    rows = []
    for case in cases:
        seconds = median_seconds(case.run, device, case.repeats or repeats)
        row = {
            "name": case.name,
            "size": case.size,
            "seconds": seconds,
            "floor_seconds": floors.seconds(case),
            "target_seconds": case.target_s,
            "notes": case.notes,
        }
        row["times_floor"] = seconds / row["floor_seconds"] if row["floor_seconds"] > 0 else None
        row["meets_target"] = None if case.target_s is None else seconds <= case.target_s
        if case.reference is not None:
            reference_seconds = median_seconds(case.reference, device, max(1, (case.repeats or repeats) // 2))
            row["reference_seconds"] = reference_seconds
            row["speedup_vs_reference"] = reference_seconds / seconds
            compare = case.disagreement or max_abs_difference
            row["disagreement"] = compare(case.run(), case.reference())
        rows.append(row)
    return rows


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render_markdown(rows: list[dict], header: dict) -> str:
    lines = [
        "# Kernel benchmark",
        "",
        ", ".join(f"{key}={value}" for key, value in header.items()),
        "",
        "| workload | size | time (ms) | floor (ms) | x floor | ref (ms) | speed-up vs ref | disagreement | target (s) | met |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|:-:|",
    ]
    for row in rows:
        met = {None: "", True: "yes", False: "**no**"}[row["meets_target"]]
        lines.append(
            f"| {row['name']} | {row['size']} | {1e3 * row['seconds']:.2f} | {_fmt(1e3 * row['floor_seconds'], '.2f')} "
            f"| {_fmt(row['times_floor'], '.1f')} | {_fmt(row.get('reference_seconds') and 1e3 * row['reference_seconds'], '.1f')} "
            f"| {_fmt(row.get('speedup_vs_reference'), '.1f')} | {_fmt(row.get('disagreement'), '.2e')} "
            f"| {_fmt(row['target_seconds'], 'g')} | {met} |"
        )
    return "\n".join(lines) + "\n"


def write_reports(rows: list[dict], header: dict, json_path: Path | None, markdown_path: Path | None) -> None:
    if json_path is not None:
        json_path.write_text(json.dumps({**header, "rows": rows}, indent=2))
    if markdown_path is not None:
        markdown_path.write_text(render_markdown(rows, header))
