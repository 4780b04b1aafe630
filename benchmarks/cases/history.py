"""The history family at the issue's scale: N = 1,000,000 pool samples, C = 10, T = 20 fp16 rounds.

For every history strategy, three rows:

- ``history <name> agreement``: the kernels against the per-sample float64 reference on a small masked
  history (the reference loops over samples in Python);
- ``history <name> incremental round``: what the AL loop does per round once the state exists: fold the
  newest round's fp16 probabilities (in memory, as INFER leaves them) into the `HistoryTracker`
  state and score. Choosing the top B (`strategies.selectors`, shared by every strategy) is not
  included.
  Floor: that round's bytes plus the state's bytes (and its N*C logs for entropy-based ones);
- ``history <name> cold pass``: the strategy's path on a `TensorHistory` of all T rounds (what a user
  does outside the loop) minus the top-B choice: one pass builds the state, then scores. Floor: the T rounds' bytes
  (400 MB), or T*N*C logs / the measured log rate for the entropy-based strategies.

Peak extra memory is measured on each row's first (warm-up) call and written into its size
column: on CPU the peak resident set (VmHWM of /proc/self/status, reset through
/proc/self/clear_refs) minus the resident set before the call; on CUDA the allocator's peak
minus what was allocated before. The [T, N, C] float32 copy this must avoid would be 800 MB.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import torch

from benchmarks.harness import Case
from experiments.history_store import HistoryStore, HistoryTracker
from kernels.history import SCORES
from strategies import PoolView, TensorHistory, get_strategy
from strategies.history import HISTORY_STRATEGIES, check_history_params, history_statistics
from tests.kernels.references import history_strategy_scores

#: The strategies whose pass is bound by one log per (round, sample, class).
ENTROPY_BASED = {"temporal_bald", "teacher_student_kl", "ema_uncertainty", "uncertainty_trend"}
QUERY_SIZE = 100


def _read_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    return int(match.group(1)) if match else 0


def peak_extra_megabytes(function, device: torch.device) -> float | None:
    """Peak memory the call adds above what was in use before it (MB); None if not measurable."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        function()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 1e6
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
    except OSError:
        return None
    before = _read_kib("VmRSS")
    function()
    return (_read_kib("VmHWM") - before) * 1024 / 1e6


def _with_memory(case: Case, device: torch.device) -> Case:
    """Measure the peak on the first call (the harness's warm-up) and append it to the size column."""
    run = case.run
    measured = []

    def first_call_measured():
        if measured:
            return run()
        result = []
        peak = peak_extra_megabytes(lambda: result.append(run()), device)
        measured.append(peak)
        case.size += "; peak +" + ("n/a" if peak is None else f"{peak:.0f} MB")
        return result[0]

    case.run = first_call_measured
    return case


def _probs(generator: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.softmax(2 * torch.randn(*shape, generator=generator), dim=-1).half()


def cases(scale: float, device: torch.device) -> list[Case]:
    generator = torch.Generator().manual_seed(0)
    rows: list[Case] = []

    # agreement with the float64 per-sample reference, small and masked
    small_rounds, small_pool, classes = 8, max(int(2_000 * scale), 64), 10
    small_hist = _probs(generator, small_rounds, small_pool, classes)
    small_observed = torch.rand(small_rounds, small_pool, generator=generator) < 0.8
    small_view = TensorHistory(small_hist.to(device), small_observed.to(device))
    small_pool_view = PoolView(pool_ids_N=torch.arange(small_pool, device=device), history=small_view)
    for name in HISTORY_STRATEGIES:
        spec = get_strategy(name)
        rows.append(Case(
            name=f"history {name} agreement", size=f"T={small_rounds}, N={small_pool}, C={classes}, 80% observed",
            run=lambda spec=spec: spec(small_pool_view, QUERY_SIZE, generator=torch.Generator().manual_seed(0)).scores_N,
            reference=lambda name=name: history_strategy_scores(name, small_hist, small_observed),
            bytes_read=small_hist.numel() * 2,
        ))

    # the scale
    rounds, pool = 20, max(int(1_000_000 * scale), 1_000)
    hist_T_N_C = _probs(generator, rounds, pool, classes).to(device)
    pool_ids = torch.arange(pool)
    round_bytes = pool * classes * 2
    size = f"T={rounds}, N={pool:,}, C={classes}, fp16"
    store = HistoryStore(tempfile.mkdtemp(prefix="alsweep-bench-history-"), classes)  # stays empty: the rounds are in memory
    for name in HISTORY_STRATEGIES:
        state_spec = check_history_params(name, {})
        entropy_logs = pool * classes if name in ENTROPY_BASED else 0

        # the loop's state after T - 1 rounds; each timed call folds one more round in
        tracker = HistoryTracker(state_spec, store, device)
        for t in range(rounds - 1):
            tracker.update(t, pool_ids, hist_T_N_C[t])
        state_bytes = sum(tensor.numel() * tensor.element_size() for tensor in tracker.stats.tensors().values())

        def incremental(tracker=tracker, name=name):
            tracker.update(rounds - 1, pool_ids, hist_T_N_C[rounds - 1])
            return SCORES[name](tracker.stats)

        rows.append(_with_memory(Case(
            name=f"history {name} incremental round", size=f"1 round of N={pool:,}, C={classes}; state {state_bytes / 1e6:.0f} MB",
            run=incremental, bytes_read=round_bytes + state_bytes, logs=entropy_logs,
        ), device))

        full_view = TensorHistory(hist_T_N_C)

        def cold(full_view=full_view, state_spec=state_spec, name=name):
            stats, _ = history_statistics(full_view, device, state_spec)  # what the strategy does, minus selection
            return SCORES[name](stats)

        rows.append(_with_memory(Case(
            name=f"history {name} cold pass", size=size, run=cold,
            bytes_read=rounds * round_bytes, logs=rounds * entropy_logs, repeats=3,
            notes="tod reads only the last two rounds: every round scored the whole pool" if name == "tod" else "",
        ), device))
    return rows
