"""A leaderboard row's code version is the hash of the executed code, so doc-only commits do not split rows."""

from __future__ import annotations

from experiments.mlflow_reader import code_version
from experiments.runner import alsweep_code_hash


def test_the_code_hash_wins_over_the_git_commit():
    tags = {"alsweep_code_hash": "0123456789abcdef", "git_commit": "feedface" * 5, "git_dirty": "true"}
    assert code_version(tags) == "code-0123456789ab"


def test_older_runs_fall_back_to_the_commit_then_the_package_version():
    assert code_version({"git_commit": "feedface" * 5, "git_dirty": "true"}) == "feedfacefeed-dirty"
    assert code_version({"alsweep_version": "0.3.0"}) == "0.3.0"


def test_the_run_hash_covers_the_three_packages():
    import experiments
    import kernels
    import strategies
    from strategies.code_hash import package_source_hash

    assert alsweep_code_hash() == package_source_hash(experiments, strategies, kernels)
