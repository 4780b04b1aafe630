"""The bad-input catalogue: 40+ mistakes a researcher makes, each run as an ``alsweep``
subprocess. Every case must exit non-zero with ONE line on stderr, under 300
characters, naming the key and the allowed values (the texts listed per case),
print no traceback, leave no MLflow run RUNNING, and leave nothing a later run
would read (no job folder, no tracking database) unless the case is about a
run that started (full disk), where the run must be FAILED and resumable.

Cases start at most ``PARALLEL`` at a time, so start-up costs overlap without
swamping a 2-core CI machine; none of them trains a model, except the full-disk
case, which trains a few tiny rounds.
"""

from __future__ import annotations

import gzip
import shutil
import sqlite3
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from experiments.datasets import DEBIAN_FASHION_MNIST_DIR
from tests.experiments.cli_helpers import alsweep_executable, cli_env

pytestmark = pytest.mark.slow

PARALLEL = 6
SMOKE = ["experiment=smoke"]
OFF = ["tracking=disabled"]  # cases that have nothing to do with tracking skip importing mlflow

# name -> (arguments, texts the one line must contain). "{dir}" is the case's own folder.
CASES: dict[str, tuple[list[str], list[str]]] = {
    # --- config values
    "strategy_typo": ([*SMOKE, "strategy=bals"], ["strategy", "'bals'", "bald"]),
    "dataset_typo": ([*SMOKE, "dataset=fashion_mnst"], ["dataset", "fashion_mnist"]),
    "model_typo": ([*SMOKE, "model=cnnn"], ["model", "'cnnn'", "cnn"]),
    "preset_typo": (["experiment=smok"], ["experiment", "smoke"]),
    "query_size_zero": ([*SMOKE, *OFF, "loop.query_size=0"], ["loop.query_size", ">= 1", "got 0"]),
    "rounds_negative": ([*SMOKE, *OFF, "loop.rounds=-1"], ["loop.rounds", ">= 0", "-1"]),
    "initial_size_too_large": ([*SMOKE, *OFF, "loop.initial_size=100000"], ["loop.initial_size", "pool size"]),
    "initial_selection": ([*SMOKE, *OFF, "loop.initial_selection=stratified"], ["loop.initial_selection", "balanced, random"]),
    "budget_below_initial": ([*SMOKE, *OFF, "loop.budget=5"], ["loop.budget", "loop.initial_size"]),
    "rounds_exceed_pool": ([*SMOKE, *OFF, "loop.rounds=1000"], ["loop.rounds", "pool size"]),
    "pool_subset_zero": ([*SMOKE, *OFF, "loop.pool_subset=0"], ["loop.pool_subset", ">= 1"]),
    "warm_start_not_bool": ([*SMOKE, *OFF, "loop.warm_start=maybe"], ["loop.warm_start", "true or false"]),
    # --- wrong types, rejected by the config schema (experiments/settings.py) while composing
    "rounds_not_int": ([*SMOKE, *OFF, "loop.rounds=abc"], ["loop.rounds", "an integer", "'abc'"]),
    "lr_not_number": ([*SMOKE, *OFF, "trainer.lr=fast"], ["trainer.lr", "a number", "'fast'"]),
    "budget_not_int": ([*SMOKE, *OFF, "loop.budget=many"], ["loop.budget", "an integer or null", "'many'"]),
    "seed_not_int_in_sweep": (["-m", *SMOKE, *OFF, "seed=0,one"], ["seed", "an integer", "'one'"]),
    "optimizer": ([*SMOKE, *OFF, "trainer.optimizer=adamx"], ["trainer.optimizer", "adam", "sgd"]),
    "lr_zero": ([*SMOKE, *OFF, "trainer.lr=0"], ["trainer.lr", "> 0"]),
    "batch_size_zero": ([*SMOKE, *OFF, "trainer.batch_size=0"], ["trainer.batch_size", ">= 1"]),
    "never_trained": ([*SMOKE, *OFF, "trainer.epochs=0", "trainer.min_steps=0"], ["trainer.epochs", "trainer.min_steps"]),
    "mc_samples_one": ([*SMOKE, *OFF, "inference.mc_samples=1"], ["inference.mc_samples", ">= 2"]),
    "mc_mode": ([*SMOKE, *OFF, "inference.mc_mode=fast"], ["inference.mc_mode", "head", "full"]),
    "device": ([*SMOKE, *OFF, "device=tpu"], ["device", "auto, cpu, cuda", "'tpu'"]),
    "seed_negative": ([*SMOKE, *OFF, "seed=-1"], ["seed", ">= 0"]),
    "threads_zero": ([*SMOKE, *OFF, "threads=0"], ["threads", ">= 1"]),
    "resume_mode": ([*SMOKE, *OFF, "resume=sometimes"], ["resume", "auto, never, must"]),
    "resume_must_nothing": ([*SMOKE, *OFF, "resume=must"], ["resume=must", "resume=auto"]),
    "bald_without_dropout": ([*SMOKE, *OFF, "strategy=bald", "model.dropout=0"], ["model.dropout", "bald"]),
    "history_not_recorded": ([*SMOKE, *OFF, "strategy=flip_rate", "loop.record_history=false"], ["loop.record_history", "true"]),
    "param_type": ([*SMOKE, *OFF, "strategy=flip_rate", "strategy.params.prior_a=abc"], ["strategy.params.prior_a", "a number", "'abc'"]),
    "param_unknown_added": ([*SMOKE, *OFF, "+strategy.params.foo=1"], ["strategy.params.foo", "allowed"]),
    # parameter values checked before round 0 trains, against the smallest pool the run will query
    "probcover_delta": ([*SMOKE, *OFF, "strategy=probcover", "strategy.params.delta=-0.5"], ["strategy.params.delta", "> 0", "-0.5"]),
    "batchbald_samples": ([*SMOKE, *OFF, "strategy=batchbald", "strategy.params.num_samples=0"], ["strategy.params.num_samples", ">= 1", "got 0"]),
    "power_beta": ([*SMOKE, *OFF, "strategy=power_bald", "strategy.params.beta=-1"], ["strategy.params.beta", ">= 0", "-1"]),
    "epig_targets": ([*SMOKE, *OFF, "strategy=epig", "strategy.params.target_size=100000"], ["strategy.params.target_size", "smallest pool", "100000"]),
    "query_above_subset": ([*SMOKE, *OFF, "loop.pool_subset=10"], ["loop.query_size", "pool of 10", "loop.pool_subset"]),
    "model_option_added": ([*SMOKE, *OFF, "+model.widht=3"], ["model.widht"]),
    "download_not_bool": ([*SMOKE, *OFF, "dataset.download=perhaps"], ["dataset.download", "true or false"]),
    "empty_experiment_name": ([*SMOKE, "tracking.experiment="], ["tracking.experiment", "non-empty"]),
    # --- Hydra-level mistakes
    "unknown_top_key": ([*SMOKE, "seeds=1"], ["'seeds'", "did you mean 'seed'", "+seeds="]),
    "unknown_loop_key": ([*SMOKE, "loop.querysize=5"], ["loop.querysize", "query_size"]),
    "unknown_model_key": ([*SMOKE, "model.droput=0.2"], ["model.droput", "dropout"]),
    "unknown_param_key": ([*SMOKE, "strategy.params.foo=1"], ["strategy.params.foo", "+strategy.params.foo"]),
    "list_without_multirun": ([*SMOKE, "strategy=entropy,tod"], ["strategy", "-m"]),
    "empty_sweep_value": (["-m", *SMOKE, "strategy="], ["strategy", "entropy", "empty"]),
    "multirun_with_info": (["-m", "--info", *SMOKE, "strategy=entropy,tod"], ["--info", "-m"]),
    "launcher_typo": ([*SMOKE, "hydra/launcher=jobilb"], ["hydra/launcher", "joblib"]),
    "subcommand_typo": (["leaderbord", "--experiment", "smoke"], ["leaderbord", "leaderboard"]),
    "unparsable_override": ([*SMOKE, "loop.rounds=[1,"], ["loop.rounds=[1,", "key=value"]),
    "late_sweep_job": (["-m", *SMOKE, "seed=0,1,2,3", "loop.query_size=20,abc"], ["loop.query_size", "'abc'"]),
    "late_sweep_param": (["-m", *SMOKE, "strategy=entropy,flip_rate", "+strategy.params.prior_a=x"], ["strategy.params"]),
    # --- dataset files
    "missing_dataset": ([*SMOKE, *OFF, "dataset=mnist", "dataset.root={dir}/empty", "dataset.download=false"], ["'mnist'", "dataset.root"]),
    "truncated_dataset": (
        [*SMOKE, *OFF, "dataset=fashion_mnist", "dataset.root={dir}/truncated", "dataset.download=false"],
        ["dataset.root", "'fashion_mnist'", "train-images-idx3-ubyte.gz", "truncated", "dataset.download=true"],
    ),
    "corrupt_dataset": (
        [*SMOKE, *OFF, "dataset=fashion_mnist", "dataset.root={dir}/corrupt", "dataset.download=false"],
        ["dataset.root", "'fashion_mnist'", "train-images-idx3-ubyte.gz"],
    ),
    # --- tracking
    "file_store_uri": ([*SMOKE, "tracking.uri=mlruns"], ["tracking.uri", "sqlite:///", "'mlruns'"]),
    "dead_server": ([*SMOKE, "tracking.uri=http://127.0.0.1:9"], ["tracking.uri", "127.0.0.1:9", "tracking=sqlite"]),
    "unwritable_store": ([*SMOKE, "tracking.uri=sqlite:////proc/alsweep/mlflow.db"], ["tracking.uri"]),
    "leaderboard_bad_uri": (["leaderboard", "--tracking-uri", "mlruns"], ["tracking.uri", "sqlite:///"]),
    "leaderboard_dead_server": (["leaderboard", "--tracking-uri", "http://127.0.0.1:9"], ["127.0.0.1:9"]),
    "leaderboard_output_is_file": (["leaderboard", "--output-dir", "{dir}/a_file"], ["--output-dir", "a_file"]),
    "leaderboard_no_sweep": (["leaderboard", "--sweep", "latest"], ["--sweep", "latest"]),
}


def _prepare_case_dir(directory: Path) -> None:
    (directory / "empty").mkdir()
    (directory / "a_file").write_text("not a folder\n")
    source = Path(DEBIAN_FASHION_MNIST_DIR)
    if source.is_dir():
        for name, damage in (("truncated", "truncate"), ("corrupt", "corrupt")):
            target = directory / name
            target.mkdir()
            for path in source.glob("*.gz"):
                if damage == "corrupt" and path.name.startswith("train-images"):
                    (target / path.name).write_bytes(gzip.compress(b"\x00\x00\x08\x03garbage" * 10))
                elif damage == "truncate" and path.name.startswith("train-images"):
                    (target / path.name).write_bytes(path.read_bytes()[:4096])
                else:
                    shutil.copy(path, target / path.name)


def _run_case(name: str, base: Path) -> tuple[int, str, str, Path]:
    directory = base / name
    directory.mkdir()
    _prepare_case_dir(directory)
    arguments = [a.replace("{dir}", str(directory)) for a in CASES[name][0]]
    if name == "leaderboard_no_sweep":
        # a store whose experiment holds no run from a sweep (reading commands never create one)
        import mlflow

        from experiments.settings import TrackingSettings

        mlflow.MlflowClient(f"sqlite:///{directory / 'mlflow.db'}").create_experiment(TrackingSettings.experiment)
    result = subprocess.run(
        [alsweep_executable(), *arguments], cwd=directory, env=cli_env(directory), capture_output=True, text=True,
        timeout=300,
    )
    return result.returncode, result.stdout, result.stderr, directory


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    base = tmp_path_factory.mktemp("catalogue")
    names = list(CASES)
    if not Path(DEBIAN_FASHION_MNIST_DIR).is_dir():
        names = [n for n in names if n not in ("truncated_dataset", "corrupt_dataset")]
    with ThreadPoolExecutor(PARALLEL) as pool:
        return dict(zip(names, pool.map(lambda n: _run_case(n, base), names)))


def test_the_catalogue_has_at_least_40_cases():
    assert len(CASES) >= 40


def _running_runs(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        return connection.execute("select count(*) from runs where status = 'RUNNING'").fetchone()[0]


def _total_runs(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("select name from sqlite_master where type='table'")}
        return connection.execute("select count(*) from runs").fetchone()[0] if "runs" in tables else 0


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line(results, name):
    if name not in results:
        pytest.skip(f"{DEBIAN_FASHION_MNIST_DIR} is not installed: no file to damage")
    returncode, stdout, stderr, directory = results[name]
    assert returncode != 0, stdout[-2000:] + stderr[-2000:]
    assert "Traceback" not in stderr + stdout, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr[-3000:]
    line = lines[0]
    assert line.startswith("alsweep: error: ") and len(line) < 300, line
    for text in CASES[name][1]:
        assert text.replace("{dir}", str(directory)) in line, line
    # nothing a later run would read: no job folder, no store (or one without runs). resume=must can only
    # look for a run inside the job, after Hydra made its folder: that folder holds no round state
    if name == "resume_must_nothing":
        assert not list(directory.rglob("round_state.pt"))
    else:
        assert not (directory / "outputs").exists(), sorted(p.name for p in (directory / "outputs").rglob("*"))
    database = directory / "mlflow.db"
    if database.exists():
        assert _running_runs(database) == 0
        if not name.startswith("leaderboard"):
            assert _total_runs(database) == 0
