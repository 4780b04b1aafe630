"""Batched tensor kernels behind alsweep's querying strategies.

Kernels know nothing of strategies, Hydra, MLflow or datasets: they take
tensors and return tensors, on whatever device the inputs live (CPU or CUDA),
compute in float32 (inputs may be fp16), and work in chunks along the pool so
that peak memory stays bounded for pools of millions of samples.

Shape letters, used as suffixes on every tensor name in the project:

====  ==========================================================
N     pool size (samples being scored this round)
K     Monte-Carlo samples (dropout masks or ensemble members)
C     classes
D     embedding dimension
B     query size (samples selected this round)
L     labelled-set size
T     rounds of history (past INFER steps)
W     a window of a sample's last observed rounds (history state ring buffers)
M     samples held in a store or state, keyed by dataset index (history)
====  ==========================================================

So ``probs_N_C`` is an [N, C] tensor of class probabilities,
``mc_log_probs_N_K_C`` holds K log-softmax outputs per pool sample,
``hist_T_N_C`` is the pool's prediction history and ``scores_N`` one score per
pool sample (higher = more worth labelling).
"""

from kernels.chunking import DEFAULT_CHUNK_SIZE, chunk_slices

__all__ = ["DEFAULT_CHUNK_SIZE", "chunk_slices"]
