"""Fused CUDA kernels, launched through CuPy, for the hot paths where torch makes several passes.

Each kernel reads its input once:

- ``uncertainty_scores``: entropy, least confidence, margin or ratio of probs_N_C in one
  pass per row (torch: max, mask, max, log, multiply, sum - several passes and temporaries);
- ``mc_scores``: BALD, mean-std and variation ratio of mc_log_probs_N_K_C in one pass over
  K x C per sample, accumulating in float64 (float32 BALD cancels at low mutual
  information), without the [N, K, C] probability temporary torch needs;
- ``k_center_update``: one greedy k-center pick: the min-distance update against the
  newest centre fused with the argmax (a packed 64-bit atomicMax), and a one-thread
  kernel that records the pick and loads the next centre, so the B picks run without any
  host synchronisation;
- ``history_update``: one AL round folded into the history family's streaming state
  (`kernels.history.HistoryStatistics`): one thread per sample reads its C new
  probabilities once and updates every kept field in place, for dense rounds and for
  rounds that scored a subset (a row index, no gather/scatter of the state). Scoring
  from the state stays in torch: it is one elementwise pass over [N] or [N, C].

Tensors cross between torch and CuPy through DLPack (no copies), and every launch runs
on torch's current CUDA stream. Nothing here runs without a GPU; the sources are
compiled by NVRTC in the tests (`compile_all_sources`), so a syntax or type error fails
CI, and `tests/kernels/test_cupy_kernels_gpu.py` checks each kernel against torch on a GPU.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator

import torch

THREADS_PER_BLOCK = 256
#: The per-sample class accumulators of `mc_scores` live in registers/local memory; beyond
#: this many classes the torch path is used.
MAX_FUSED_CLASSES = 256
UNCERTAINTY_MODES = {"entropy": 0, "least_confidence": 1, "margin": 2, "ratio": 3}
#: log p is clamped here in p log p (as in kernels.uncertainty.LOG_CLAMP).
LOG_CLAMP = 1e-12

UNCERTAINTY_SOURCE = r"""
extern "C" __global__ void uncertainty_scores(
    const float* __restrict__ probs, float* __restrict__ scores, long long n, int c, int mode) {
  long long row = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (row >= n) return;
  const float* p = probs + row * c;
  float first = __int_as_float(0xff800000);  // -inf
  float second = first;
  float entropy = 0.0f;
  for (int j = 0; j < c; ++j) {
    float v = p[j];
    // a tie with the maximum makes it the runner-up too, as torch's max-mask-max does
    if (v > first) { second = first; first = v; } else if (v > second) { second = v; }
    if (mode == 0) entropy -= v * logf(fmaxf(v, 1e-12f));
  }
  float score;
  if (mode == 0) score = entropy;
  else if (mode == 1) score = 1.0f - first;
  else if (mode == 2) score = second - first;
  else score = second / fmaxf(first, 1e-12f);
  scores[row] = score;
}
"""

#: NUM_CLASSES is fixed at compile time so the per-class accumulators stay in registers.
MC_SCORES_SOURCE = r"""
extern "C" __global__ void mc_scores(
    const float* __restrict__ log_probs, float* __restrict__ bald, float* __restrict__ mean_std,
    float* __restrict__ variation_ratio, long long n, int k) {
  long long row = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (row >= n) return;
  const float* lp = log_probs + row * (long long)k * NUM_CLASSES;
  double sum_p[NUM_CLASSES];
  double sum_p2[NUM_CLASSES];
  int votes[NUM_CLASSES];
  for (int c = 0; c < NUM_CLASSES; ++c) { sum_p[c] = 0.0; sum_p2[c] = 0.0; votes[c] = 0; }
  double sum_p_log_p = 0.0;
  for (int s = 0; s < k; ++s) {
    int mode = 0;
    float best = lp[(long long)s * NUM_CLASSES];
    for (int c = 0; c < NUM_CLASSES; ++c) {
      float l = lp[(long long)s * NUM_CLASSES + c];
      double p = exp((double)l);
      sum_p[c] += p;
      sum_p2[c] += p * p;
      sum_p_log_p += p * fmax((double)l, -1e4);  // p = 0 contributes 0, not 0 * -inf
      if (l > best) { best = l; mode = c; }
    }
    votes[mode] += 1;
  }
  double entropy_of_mean = 0.0, std_sum = 0.0;
  int modal = 0;
  for (int c = 0; c < NUM_CLASSES; ++c) {
    double mean = sum_p[c] / k;
    entropy_of_mean -= mean * log(fmax(mean, 1e-300));
    double variance = fmax(sum_p2[c] / k - mean * mean, 0.0);
    std_sum += sqrt(variance);
    if (votes[c] > modal) modal = votes[c];
  }
  double mutual_information = entropy_of_mean + sum_p_log_p / k;
  bald[row] = (float)fmax(mutual_information, 0.0);
  mean_std[row] = (float)(std_sum / NUM_CLASSES);
  variation_ratio[row] = 1.0f - (float)modal / (float)k;
}
"""

K_CENTER_SOURCE = r"""
// Non-negative float bits order like unsigned ints: key = distance bits << 32 | (~row),
// so atomicMax finds the largest distance and, among equal ones, the lowest row (as torch.argmax).
extern "C" __global__ void k_center_update(
    const float* __restrict__ emb, const float* __restrict__ centre, float* __restrict__ min_dist,
    unsigned long long* __restrict__ best_key, long long n, int d) {
  __shared__ unsigned long long block_best[32];
  long long row = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  unsigned long long key = 0ull;
  if (row < n) {
    float current = min_dist[row];
    if (current >= 0.0f) {  // picked rows hold -1
      const float* x = emb + row * d;
      float distance = 0.0f;
      for (int j = 0; j < d; ++j) { float diff = x[j] - centre[j]; distance += diff * diff; }
      current = fminf(current, distance);
      min_dist[row] = current;
      key = ((unsigned long long)__float_as_uint(current) << 32) | (unsigned long long)(0xffffffffu - (unsigned int)row);
    }
  }
  for (int offset = 16; offset > 0; offset >>= 1) {
    unsigned long long other = __shfl_down_sync(0xffffffffu, key, offset);
    key = other > key ? other : key;
  }
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) block_best[warp] = key;
  __syncthreads();
  if (warp == 0) {
    key = lane < (blockDim.x >> 5) ? block_best[lane] : 0ull;
    for (int offset = 16; offset > 0; offset >>= 1) {
      unsigned long long other = __shfl_down_sync(0xffffffffu, key, offset);
      key = other > key ? other : key;
    }
    if (lane == 0) atomicMax(best_key, key);
  }
}

extern "C" __global__ void k_center_take(
    const float* __restrict__ emb, float* __restrict__ centre, float* __restrict__ min_dist,
    unsigned long long* __restrict__ best_key, long long* __restrict__ picks, int b, int d) {
  long long row = (long long)(0xffffffffu - (unsigned int)(best_key[0] & 0xffffffffull));
  if (threadIdx.x == 0) { picks[b] = row; min_dist[row] = -1.0f; }
  for (int j = threadIdx.x; j < d; j += blockDim.x) centre[j] = emb[row * d + j];
  __syncthreads();
  if (threadIdx.x == 0) best_key[0] = 0ull;
}
"""


#: Compile-time: NUM_CLASSES, IN_HALF (the round's rows are fp16), STATE_HALF (last/prev probs are fp16).
#: fp16 is read and written through PTX conversions, so NVRTC needs no CUDA headers.
HISTORY_SOURCE = r"""
__device__ __forceinline__ float half_to_float(unsigned short h) {
  float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f;
}
__device__ __forceinline__ unsigned short float_to_half(float f) {
  unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h;
}
#if IN_HALF
typedef unsigned short in_t;
#define LOAD_IN(x) half_to_float(x)
#else
typedef float in_t;
#define LOAD_IN(x) (x)
#endif
#if STATE_HALF
typedef unsigned short state_t;
#define LOAD_STATE(x) half_to_float(x)
#define STORE_STATE(x) float_to_half(x)
#else
typedef float state_t;
#define LOAD_STATE(x) (x)
#define STORE_STATE(x) (x)
#endif

// problems[0]: bit 1 a non-finite value, bit 2 a row sum off 1 by > 1e-2, bit 4 a negative value;
// problems[1]: the largest deviation's float bits (non-negative floats order as unsigned ints).
extern "C" __global__ void history_check(
    const in_t* __restrict__ probs, long long n, unsigned int* __restrict__ problems) {
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const in_t* src = probs + i * NUM_CLASSES;
  float total = 0.0f;
  unsigned int flags = 0u;
  for (int c = 0; c < NUM_CLASSES; ++c) {
    float v = LOAD_IN(src[c]);
    total += v;
    if (!isfinite(v)) flags |= 1u;
    if (v < 0.0f) flags |= 4u;
  }
  float deviation = fabsf(total - 1.0f);
  if (!(flags & 1u) && deviation > 1e-2f) {
    flags |= 2u;
    atomicMax(problems + 1, __float_as_uint(deviation));
  }
  if (flags) atomicOr(problems, flags);
}

// Row i of the round updates state row rows[i] (rows == NULL: start + i). A NULL field is not kept.
// The arithmetic and its order follow HistoryStatistics._update_rows, so both give the same state.
extern "C" __global__ void history_update(
    const in_t* __restrict__ probs, const long long* __restrict__ rows, long long n, long long start,
    float* __restrict__ n_observed, state_t* __restrict__ last_probs, state_t* __restrict__ prev_probs,
    float* __restrict__ sq_diff_sum, float* __restrict__ label_changes, long long* __restrict__ last_label,
    int* __restrict__ votes, float* __restrict__ probs_sum, float* __restrict__ probs_m2,
    float* __restrict__ log_probs_sum, float* __restrict__ entropy_sum, float* __restrict__ entropy_m2,
    float* __restrict__ entropy_ema, float* __restrict__ trend_entropy, float* __restrict__ trend_round,
    float ema_decay, int trend_window, float round_index) {
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  long long row = rows ? rows[i] : start + i;
  long long base = row * NUM_CLASSES;
  const in_t* src = probs + i * NUM_CLASSES;
  float p[NUM_CLASSES];
  int label = 0;
  for (int c = 0; c < NUM_CLASSES; ++c) {
    p[c] = LOAD_IN(src[c]);
    if (p[c] > p[label]) label = c;  // the first maximal class, as torch's max().indices
  }
  float n_old = n_observed[row];
  bool seen_before = n_old > 0.0f;
  float n_new = n_old + 1.0f;
  if (label_changes) {
    if (seen_before && (long long)label != last_label[row]) label_changes[row] += 1.0f;
    last_label[row] = label;
  }
  if (sq_diff_sum && seen_before) {
    float squares = 0.0f;
    for (int c = 0; c < NUM_CLASSES; ++c) { float d = p[c] - LOAD_STATE(last_probs[base + c]); squares += d * d; }
    sq_diff_sum[row] += 0.5f * squares;
  }
  for (int c = 0; c < NUM_CLASSES; ++c) {
    if (prev_probs) prev_probs[base + c] = last_probs[base + c];
    last_probs[base + c] = STORE_STATE(p[c]);
  }
  if (votes) votes[base + label] += 1;
  float entropy = 0.0f;
  if (log_probs_sum || entropy_sum || entropy_ema) {
    for (int c = 0; c < NUM_CLASSES; ++c) {
      float log_p = logf(fmaxf(p[c], 1e-12f));
      if (log_probs_sum) log_probs_sum[base + c] += log_p;
      entropy -= p[c] * log_p;
    }
  }
  if (probs_sum) {
    float count_old = fmaxf(n_old, 1.0f);
    for (int c = 0; c < NUM_CLASSES; ++c) {
      float total = probs_sum[base + c];
      float delta = p[c] - total / count_old;  // Welford: the mean is the running sum / n
      total += p[c];
      if (probs_m2) probs_m2[base + c] += delta * (p[c] - total / n_new);
      probs_sum[base + c] = total;
    }
  }
  if (entropy_sum) {
    float total = entropy_sum[row];
    float delta = entropy - total / fmaxf(n_old, 1.0f);
    total += entropy;
    if (entropy_m2) entropy_m2[row] += delta * (entropy - total / n_new);
    entropy_sum[row] = total;
  }
  if (entropy_ema) entropy_ema[row] = entropy_ema[row] * ema_decay + entropy * (1.0f - ema_decay);
  if (trend_entropy) {
    long long slot = row * trend_window + (long long)fmodf(n_old, (float)trend_window);
    trend_entropy[slot] = entropy;
    trend_round[slot] = round_index;
  }
  n_observed[row] = n_new;
}
"""

#: The state fields `history_update` takes, in its argument order (None -> NULL: not kept).
HISTORY_FIELDS = (
    "n_observed_N", "last_probs_N_C", "prev_probs_N_C", "sq_diff_sum_N", "label_changes_N", "last_label_N",
    "votes_N_C", "probs_sum_N_C", "probs_m2_N_C", "log_probs_sum_N_C", "entropy_sum_N", "entropy_m2_N",
    "entropy_ema_N", "trend_entropy_N_W", "trend_round_N_W",
)


def sources() -> Iterator[tuple[str, str, tuple[str, ...]]]:
    """(name, CUDA source, kernel names) of every fused kernel, as NVRTC compiles them.

    ``mc_scores`` is shown for C = 10; it is compiled per number of classes at run time.
    """
    yield "uncertainty_scores", UNCERTAINTY_SOURCE, ("uncertainty_scores",)
    yield "mc_scores", _mc_source(10), ("mc_scores",)
    yield "k_center", K_CENTER_SOURCE, ("k_center_update", "k_center_take")
    for in_half, state_half in ((0, 0), (1, 1), (0, 1), (1, 0)):
        yield (f"history_in{16 if in_half else 32}_state{16 if state_half else 32}",
               _history_source(10, in_half, state_half), ("history_check", "history_update"))


def _history_source(num_classes: int, in_half: int, state_half: int) -> str:
    return f"#define NUM_CLASSES {num_classes}\n#define IN_HALF {in_half}\n#define STATE_HALF {state_half}\n" + HISTORY_SOURCE


def _mc_source(num_classes: int) -> str:
    return f"#define NUM_CLASSES {num_classes}\n" + MC_SCORES_SOURCE


def compile_all_sources(arch: str = "compute_90") -> dict[str, int]:
    """Compile every source with NVRTC (no GPU or driver needed); {name: PTX bytes}.

    Raises RuntimeError naming the source and NVRTC's log on the first error.
    """
    from cupy_backends.cuda.libs import nvrtc

    sizes = {}
    for name, source, _ in sources():
        program = nvrtc.createProgram(source, f"{name}.cu", [], [])
        try:
            nvrtc.compileProgram(program, [f"--gpu-architecture={arch}"])
        except Exception as error:  # noqa: BLE001 - NVRTC raises its own error type
            log = nvrtc.getProgramLog(program)
            raise RuntimeError(f"NVRTC could not compile {name}.cu: {log.strip() or error}") from error
        sizes[name] = len(nvrtc.getPTX(program))
        nvrtc.destroyProgram(program)
    return sizes


# --- launching (CUDA only) ------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _raw_kernel(source_name: str, kernel_name: str, num_classes: int = 0, in_half: int = 0, state_half: int = 0):
    import cupy

    source = {
        "uncertainty_scores": lambda: UNCERTAINTY_SOURCE,
        "mc_scores": lambda: _mc_source(num_classes),
        "k_center": lambda: K_CENTER_SOURCE,
        "history": lambda: _history_source(num_classes, in_half, state_half),
    }[source_name]()
    return cupy.RawKernel(source, kernel_name)


def _stream():
    import cupy

    return cupy.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream)


def _as_cupy(tensor: torch.Tensor):
    import cupy

    return cupy.from_dlpack(tensor.contiguous())


def _blocks(n: int) -> tuple[int]:
    return (max(1, math.ceil(n / THREADS_PER_BLOCK)),)


def uncertainty_scores(probs_N_C: torch.Tensor, kind: str) -> torch.Tensor:
    """One of `UNCERTAINTY_MODES` for every row of a CUDA float32 probs_N_C; scores_N float32."""
    import numpy

    probs = probs_N_C.float().contiguous()
    scores_N = torch.empty(probs.shape[0], dtype=torch.float32, device=probs.device)
    if probs.shape[0]:
        with _stream():
            _raw_kernel("uncertainty_scores", "uncertainty_scores")(
                _blocks(probs.shape[0]), (THREADS_PER_BLOCK,),
                (_as_cupy(probs), _as_cupy(scores_N), numpy.int64(probs.shape[0]),
                 numpy.int32(probs.shape[1]), numpy.int32(UNCERTAINTY_MODES[kind])),
            )
    return scores_N


def mc_scores(mc_log_probs_N_K_C: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(bald_N, mean_std_N, variation_ratio_N), float32, from CUDA float32 log-probabilities."""
    import numpy

    log_probs = mc_log_probs_N_K_C.float().contiguous()
    n, k, c = log_probs.shape
    if c > MAX_FUSED_CLASSES:
        raise ValueError(f"mc_scores: the fused kernel takes C <= {MAX_FUSED_CLASSES} classes; got C={c}")
    outputs = tuple(torch.empty(n, dtype=torch.float32, device=log_probs.device) for _ in range(3))
    if n:
        with _stream():
            _raw_kernel("mc_scores", "mc_scores", c)(
                _blocks(n), (THREADS_PER_BLOCK,),
                (_as_cupy(log_probs), *(_as_cupy(out) for out in outputs), numpy.int64(n), numpy.int32(k)),
            )
    return outputs


def k_center_picks(
    emb_N_D: torch.Tensor, initial_min_sq_dist_N: torch.Tensor, num_picks: int, first_pick: int | None
) -> torch.Tensor:
    """Greedy k-center picks on CUDA, from each row's squared distance to the labelled set.

    Args:
        emb_N_D: pool embeddings (float32, CUDA).
        initial_min_sq_dist_N: squared distance of every row to the labelled set (+inf when L = 0).
        num_picks: B (at most N).
        first_pick: the row taken first when nothing is labelled (None: the farthest row).
    Returns:
        picks_B int64, in pick order.
    """
    import numpy

    emb = emb_N_D.float().contiguous()
    n, d = emb.shape
    min_dist = initial_min_sq_dist_N.float().clone()
    picks_B = torch.empty(num_picks, dtype=torch.int64, device=emb.device)
    centre = torch.empty(d, dtype=torch.float32, device=emb.device)
    best_key = torch.zeros(1, dtype=torch.int64, device=emb.device)  # read as unsigned by the kernels
    update = _raw_kernel("k_center", "k_center_update")
    take = _raw_kernel("k_center", "k_center_take")
    start = 0
    if first_pick is not None and num_picks:
        picks_B[0] = first_pick
        min_dist[first_pick] = -1.0
        centre.copy_(emb[first_pick])
        start = 1
    with _stream():
        emb_cp, centre_cp, min_cp, key_cp, picks_cp = map(_as_cupy, (emb, centre, min_dist, best_key, picks_B))
        for b in range(start, num_picks):
            if b > 0:
                # fold in the newest centre, then take the farthest row
                update(_blocks(n), (THREADS_PER_BLOCK,), (emb_cp, centre_cp, min_cp, key_cp, numpy.int64(n), numpy.int32(d)))
            else:
                # first pick with a labelled set: the farthest row from it, no centre yet
                _argmax_key(min_cp, key_cp, n)
            take((1,), (128,), (emb_cp, centre_cp, min_cp, key_cp, picks_cp, numpy.int32(b), numpy.int32(d)))
    return picks_B


def _argmax_key(min_dist_cp, key_cp, n: int) -> None:
    """Store the packed (distance, row) key of the farthest row, without an update."""
    import cupy

    rows = cupy.arange(n, dtype=cupy.uint64)
    bits = min_dist_cp.view(cupy.uint32).astype(cupy.uint64)
    keys = (bits << cupy.uint64(32)) | (cupy.uint64(0xFFFFFFFF) - rows)
    keys[min_dist_cp < 0] = 0
    key_cp.view(cupy.uint64)[0] = keys.max()


def history_check(probs_n_C: torch.Tensor) -> tuple[int, float]:
    """(problem bits, largest row-sum deviation) of a CUDA round, as `history_check` finds them; one sync."""
    import numpy

    probs = probs_n_C.contiguous()
    n, c = probs.shape
    problems = torch.zeros(2, dtype=torch.int32, device=probs.device)  # read as unsigned by the kernel
    if n:
        in_half = int(probs.dtype == torch.float16)
        with _stream():
            _raw_kernel("history", "history_check", c, in_half, 0)(
                _blocks(n), (THREADS_PER_BLOCK,), (_as_cupy(probs.view(torch.int16) if in_half else probs),
                                                   numpy.int64(n), _as_cupy(problems)),
            )
    flags, deviation_bits = problems.cpu().tolist()
    deviation = numpy.array([deviation_bits], dtype=numpy.int32).view(numpy.float32)[0]
    return int(flags), float(deviation)


def history_update(
    state: dict[str, torch.Tensor], probs_n_C: torch.Tensor, rows_n: torch.Tensor | None, start: int,
    ema_decay: float, trend_window: int, round_index: float,
) -> None:
    """Fold one round (CUDA, float32 or fp16 rows) into the state tensors ``state`` (by field name), in place.

    Row i updates state row ``rows_n[i]`` (unique), or ``start + i`` when ``rows_n`` is None.
    Fields missing from ``state`` are not kept. No host synchronisation.
    """
    import numpy

    probs = probs_n_C.contiguous()
    n, c = probs.shape
    if n == 0:
        return
    in_half = int(probs.dtype == torch.float16)
    state_half = int(state["last_probs_N_C"].dtype == torch.float16)
    null = numpy.uint64(0)

    def pointer(tensor: torch.Tensor | None):
        if tensor is None:
            return null
        return _as_cupy(tensor.view(torch.int16) if tensor.dtype == torch.float16 else tensor)

    rows = None if rows_n is None else rows_n.to(device=probs.device, dtype=torch.int64).contiguous()
    with _stream():
        _raw_kernel("history", "history_update", c, in_half, state_half)(
            _blocks(n), (THREADS_PER_BLOCK,),
            (pointer(probs), pointer(rows), numpy.int64(n), numpy.int64(start),
             *(pointer(state.get(name)) for name in HISTORY_FIELDS),
             numpy.float32(ema_decay), numpy.int32(trend_window), numpy.float32(round_index)),
        )
