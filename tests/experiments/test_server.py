"""The lab set-up end to end: ``scripts/tracking-server.sh`` starts PostgreSQL and an MLflow
basic-auth server on loopback; alice sweeps into her experiment through the ``alsweep``
command; bob, granted READ, reads it back but can neither write to it nor delete it; the
leaderboard reads it over HTTP; no password lands in a param, tag, artifact or log.

Needs Debian's ``postgresql`` and the ``[server]`` extra; skipped without them, except in CI
(``CI=true``), where a missing piece fails the test instead of hiding it.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from experiments.tracking import import_mlflow
from tests.experiments.cli_helpers import alsweep_executable, cli_env

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "tracking-server.sh"
SMOKE_ROUNDS, SMOKE_INITIAL, SMOKE_QUERY = 3, 20, 20  # conf/experiment/smoke.yaml
SEEDS = (0, 1, 2, 3)
EXPERIMENT = "alice_study"
PER_ROUND_METRICS = (
    "labelled_count", "pool_size", "test_accuracy", "test_loss", "train_seconds",
    "infer_seconds", "record_seconds", "select_seconds", "train_steps",
)
SUMMARY_METRICS = ("final_test_accuracy", "learning_curve_area")


def _missing_prerequisite() -> str | None:
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb") and not os.environ.get("ALSWEEP_PG_BIN"):
        return "PostgreSQL is not installed (apt-get install postgresql)"
    for module in ("psycopg2", "flask_wtf"):
        try:
            __import__(module)
        except ImportError:
            return f"the [server] extra is not installed (no {module}): pip install -e '.[server]'"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root needs runuser (util-linux) to start PostgreSQL as 'postgres'"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _ends_within(pid: int, seconds: float) -> bool:
    """True once the process is gone or a zombie (exited; its new parent may reap it late)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.2)
    return False


@dataclass
class Server:
    directory: Path
    port: int
    pg_port: int
    admin: tuple[str, str]
    passwords: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, command: str, check: bool = True, timeout: int = 300) -> subprocess.CompletedProcess:
        result = subprocess.run(
            ["bash", str(SCRIPT), command, "--dir", str(self.directory), "--port", str(self.port), "--pg-port", str(self.pg_port)],
            env=_script_env(), capture_output=True, text=True, timeout=timeout,
        )
        self.outputs.append(result.stdout + result.stderr)
        if check:
            assert result.returncode == 0, f"tracking-server.sh {command} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def secrets(self) -> list[str]:
        """Every password in play: the users', the admin's, the database role's and the CSRF key."""
        values = [*self.passwords.values(), self.admin[1]]
        values.append((self.directory / "pgpass").read_text().strip().split(":", 4)[4])
        values.append((self.directory / "secrets").read_text().strip().split("=", 1)[1])
        return values


def _script_env() -> dict[str, str]:
    env = dict(os.environ)
    env["ALSWEEP_PYTHON"] = sys.executable
    env.setdefault("ALSWEEP_SERVER_WORKERS", "1")  # one worker serves a 2-job sweep; CI's CPU is scarce
    for key in ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY",
                "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        env.pop(key, None)  # the script must generate what it needs
    return env


@contextmanager
def logged_in(username: str, password: str) -> Iterator[None]:
    """MLflow's REST client reads the login from the environment at every request."""
    saved = {key: os.environ.get(key) for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = username, password
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _read_credentials(path: Path) -> tuple[str, str]:
    text = path.read_text()
    user = re.search(r"^mlflow_tracking_username = (.+)$", text, re.M).group(1)
    password = re.search(r"^mlflow_tracking_password = (.+)$", text, re.M).group(1)
    return user, password


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    missing = _missing_prerequisite()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the server test: {missing}")
        pytest.skip(missing)
    # not under pytest's 0700 tmp folder: as root, PostgreSQL runs as 'postgres' and must reach it
    directory = Path(tempfile.mkdtemp(prefix="alsweep-server-"))
    directory.chmod(0o755)
    instance = Server(directory, _free_port(), _free_port(), ("", ""))
    try:
        started = time.perf_counter()
        instance.script("start")
        instance.timings["start_seconds"] = time.perf_counter() - started
        credentials = directory / "admin.credentials"
        assert credentials.stat().st_mode & 0o777 == 0o600
        instance.admin = _read_credentials(credentials)
        yield instance
    finally:
        # runs on failure too: nothing may outlive the tests
        instance.script("stop", check=False)
        if instance.timings:
            print("\nserver test numbers:", {k: round(v, 1) if isinstance(v, float) else v for k, v in instance.timings.items()})
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def users(server: Server) -> Server:
    from mlflow.server.auth.client import AuthServiceClient

    import_mlflow()
    auth = AuthServiceClient(server.uri)
    with logged_in(*server.admin):
        for name in ("alice", "bob"):
            # long random passwords: the credential scan below must not match by accident
            server.passwords[name] = f"{name}-{os.urandom(12).hex()}"
            auth.create_user(name, server.passwords[name])
            assert auth.get_user(name).username == name
    return server


def _alsweep(arguments: list[str], cwd: Path, user: str, server: Server, timeout: int = 600) -> subprocess.CompletedProcess:
    env = cli_env(cwd)
    env.update(MLFLOW_TRACKING_USERNAME=user, MLFLOW_TRACKING_PASSWORD=server.passwords[user])
    return subprocess.run(
        [alsweep_executable(), *arguments], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture(scope="module")
def sweep(users: Server, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    directory = tmp_path_factory.mktemp("alice_sweep")
    started = time.perf_counter()
    result = _alsweep(
        ["-m", "experiment=smoke", f"seed={','.join(map(str, SEEDS))}", "tracking=server",
         f"tracking.uri={users.uri}", f"tracking.experiment={EXPERIMENT}",
         "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
        directory, "alice", users,
    )
    users.timings["sweep_seconds"] = time.perf_counter() - started
    assert result.returncode == 0, f"alice's sweep failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return directory, result


def _client(server: Server):
    return import_mlflow().MlflowClient(server.uri)


def _alice_runs(server: Server):
    client = _client(server)
    with logged_in("alice", server.passwords["alice"]):
        experiment = client.get_experiment_by_name(EXPERIMENT)
        assert experiment is not None
        return experiment, client.search_runs([experiment.experiment_id])


@pytest.mark.server
def test_script_reports_status_and_starts_idempotently(server):
    status = server.script("status")
    assert "PostgreSQL running" in status.stdout and f"MLflow running at {server.uri}" in status.stdout
    again = server.script("start")
    assert "already running" in again.stdout
    for name in ("pgpass", "secrets", "admin.credentials", "basic_auth.ini", "mlflow.log"):
        assert (server.directory / name).stat().st_mode & 0o777 == 0o600, name
    # without a login the server refuses every tracking call
    import requests

    response = requests.get(f"{server.uri}/api/2.0/mlflow/experiments/search", params={"max_results": 1}, timeout=10)
    assert response.status_code == 401


@pytest.mark.server
def test_alice_sweep_gives_four_finished_runs_with_every_round(users, sweep):
    from mlflow.server.auth.client import AuthServiceClient

    _, runs = _alice_runs(users)
    assert len(runs) == len(SEEDS)
    assert {run.info.status for run in runs} == {"FINISHED"}
    assert sorted(int(run.data.tags["seed"]) for run in runs) == list(SEEDS)
    assert {run.data.tags["strategy"] for run in runs} == {"entropy"}
    client = _client(users)
    metric_rows = 0
    with logged_in("alice", users.passwords["alice"]):
        # the server made alice, who created the experiment, its manager
        permission = AuthServiceClient(users.uri).get_user_permission("alice", "experiment", runs[0].info.experiment_id)
        assert permission.permission == "MANAGE"
        for run in runs:
            for key in PER_ROUND_METRICS:
                history = client.get_metric_history(run.info.run_id, key)
                assert sorted(metric.step for metric in history) == list(range(SMOKE_ROUNDS + 1)), key
                metric_rows += len(history)
            for key in SUMMARY_METRICS:
                assert len(client.get_metric_history(run.info.run_id, key)) == 1, key
                metric_rows += 1
            counts = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "labelled_count"))
            assert [value for _, value in counts] == [SMOKE_INITIAL + r * SMOKE_QUERY for r in range(SMOKE_ROUNDS + 1)]
            artifacts = {artifact.path for artifact in client.list_artifacts(run.info.run_id)}
            assert artifacts >= {"config.yaml", "selections.csv", "learning_curve.csv", "learning_curve.png"}
    assert metric_rows == len(SEEDS) * (len(PER_ROUND_METRICS) * (SMOKE_ROUNDS + 1) + len(SUMMARY_METRICS))
    users.timings["finished_runs"] = len(runs)
    users.timings["metric_rows"] = metric_rows
    # the artifacts went through the server into its artifact root, not into the launch folder
    stored = list((users.directory / "artifacts").rglob("selections.csv"))
    assert len(stored) == len(SEEDS)


@pytest.mark.server
def test_bob_reads_alice_experiment_only_when_granted_and_never_writes(users, sweep, tmp_path):
    import requests
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth.client import AuthServiceClient

    experiment, runs = _alice_runs(users)
    run_id = runs[0].info.run_id
    client = _client(users)

    def denied(action) -> bool:
        try:
            action()
        except MlflowException as error:
            assert error.get_http_status_code() == 403, error
            return True
        except requests.HTTPError as error:  # artifact uploads go through plain HTTP
            assert error.response.status_code == 403, error
            return True
        return False

    bob = ("bob", users.passwords["bob"])
    with logged_in(*bob):
        # default_permission = NO_PERMISSIONS: alice's experiment is private until she shares it
        assert denied(lambda: client.get_experiment(experiment.experiment_id))
        assert denied(lambda: client.get_run(run_id))
        assert client.search_runs([experiment.experiment_id]) == []

    # alice owns (MANAGE) the experiment she created, so she can share it herself
    with logged_in("alice", users.passwords["alice"]):
        AuthServiceClient(users.uri).grant_user_permission("bob", "experiment", experiment.experiment_id, "READ")

    with logged_in(*bob):
        assert client.get_experiment(experiment.experiment_id).name == EXPERIMENT
        assert len(client.search_runs([experiment.experiment_id])) == len(SEEDS)
        assert len(client.get_metric_history(run_id, "test_accuracy")) == SMOKE_ROUNDS + 1
        local = client.download_artifacts(run_id, "selections.csv", str(tmp_path))
        assert len(Path(local).read_text().splitlines()) == 1 + SMOKE_ROUNDS * SMOKE_QUERY
        could_not = {
            "log a metric": lambda: client.log_metric(run_id, "bob_was_here", 1.0),
            "set a tag": lambda: client.set_tag(run_id, "strategy", "bob"),
            "create a run": lambda: client.create_run(experiment.experiment_id),
            "mark a run FAILED": lambda: client.set_terminated(run_id, status="FAILED"),
            "upload an artifact": lambda: client.log_text(run_id, "bob", "bob.txt"),
            "delete a run": lambda: client.delete_run(run_id),
            "rename the experiment": lambda: client.rename_experiment(experiment.experiment_id, "bobs"),
            "delete the experiment": lambda: client.delete_experiment(experiment.experiment_id),
            "grant himself EDIT": lambda: AuthServiceClient(users.uri).grant_user_permission(
                "bob", "experiment", experiment.experiment_id, "EDIT"),
        }
        allowed = [action for action, call in could_not.items() if not denied(call)]
        assert allowed == [], f"bob could {allowed}"

    # nothing of alice's changed
    _, after = _alice_runs(users)
    assert {run.info.status for run in after} == {"FINISHED"} and len(after) == len(SEEDS)
    assert all("bob_was_here" not in run.data.metrics and run.data.tags["strategy"] == "entropy" for run in after)


@pytest.mark.server
def test_bob_cannot_sweep_into_alice_experiment(users, sweep, tmp_path):
    started = time.perf_counter()
    result = _alsweep(
        ["experiment=smoke", "seed=9", "tracking=server", f"tracking.uri={users.uri}", f"tracking.experiment={EXPERIMENT}"],
        tmp_path, "bob", users, timeout=300,
    )
    users.timings["bob_denied_run_seconds"] = time.perf_counter() - started
    assert result.returncode != 0
    users.timings["bob_sweep_error"] = result.stderr.strip().splitlines()[-1][:200] if result.stderr.strip() else ""
    # one line that says who was refused what and what to do, not Hydra's block or a traceback
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == (
        f"alsweep: error: tracking.experiment: bob may not create runs in experiment '{EXPERIMENT}' at {users.uri} "
        "(HTTP 403, PERMISSION_DENIED); ask its owner for EDIT, or log to an experiment of your own with "
        "tracking.experiment=NAME"
    ), result.stderr[-3000:]
    _, runs = _alice_runs(users)
    assert len(runs) == len(SEEDS) and "9" not in {run.data.tags["seed"] for run in runs}


@pytest.mark.server
def test_leaderboard_reads_the_sweep_over_http(users, sweep, tmp_path):
    started = time.perf_counter()
    result = _alsweep(
        ["leaderboard", "--experiment", EXPERIMENT, "--tracking-uri", users.uri, "--output-dir", str(tmp_path / "board")],
        tmp_path, "alice", users, timeout=300,
    )
    users.timings["leaderboard_seconds"] = time.perf_counter() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {}
    for line in result.stdout.splitlines():
        cells = [cell.strip() for cell in re.split(r"[│┃]", line)[1:-1]]
        if len(cells) >= 8 and cells[0].isdigit():  # "#", strategy, version, seeds, labels, ...: the leaderboard's columns
            rows[cells[1]] = cells
    assert set(rows) == {"entropy"}, result.stdout
    assert rows["entropy"][3] == str(len(SEEDS))  # seeds
    assert rows["entropy"][4] == str(SMOKE_INITIAL + SMOKE_ROUNDS * SMOKE_QUERY)  # labels at the end
    csv_text = (tmp_path / "board" / "leaderboard.csv").read_text()
    assert "entropy" in csv_text and (tmp_path / "board" / "learning_curves.png").is_file()


@pytest.mark.server
def test_no_credential_in_params_tags_artifacts_or_logs(users, sweep, tmp_path):
    secrets = users.secrets()
    assert all(len(secret) >= 16 for secret in secrets)
    _, runs = _alice_runs(users)
    client = _client(users)
    scanned = {"params": 0, "tags": 0, "artifact files": 0, "log files": 0}

    def check(text: str, where: str) -> None:
        for secret in secrets:
            assert secret not in text, f"a password appears in {where}"

    with logged_in("alice", users.passwords["alice"]):
        for run in runs:
            for key, value in run.data.params.items():
                check(f"{key}={value}", f"param {key}")
                scanned["params"] += 1
            for key, value in run.data.tags.items():
                check(f"{key}={value}", f"tag {key}")
                scanned["tags"] += 1
            target = tmp_path / run.info.run_id
            client.download_artifacts(run.info.run_id, "", str(target))
            for path in target.rglob("*"):
                if path.is_file():
                    check(path.read_bytes().decode("latin-1"), f"artifact {path.name}")
                    scanned["artifact files"] += 1
    launch_dir, result = sweep
    check(result.stdout + result.stderr, "the sweep's console output")
    logs = [users.directory / "mlflow.log", users.directory / "postgres" / "postgres.log",
            *[path for path in launch_dir.rglob("*") if path.is_file() and path.suffix in {".log", ".yaml", ".csv", ".json"}]]
    for path in logs:
        check(path.read_bytes().decode("latin-1"), str(path))
        scanned["log files"] += 1
    check("\n".join(users.outputs), "tracking-server.sh's output")
    assert scanned["params"] > 0 and scanned["tags"] > 0 and scanned["artifact files"] >= 4 * len(SEEDS)
    users.timings.update({f"scanned {key}": value for key, value in scanned.items()})


@pytest.mark.server
def test_stop_ends_postgres_and_mlflow(server):
    pid = int((server.directory / "mlflow.pid").read_text())
    postmaster = int((server.directory / "postgres" / "data" / "postmaster.pid").read_text().split()[0])
    server.script("stop")
    for process in (pid, postmaster):
        assert _ends_within(process, seconds=15), f"process {process} still runs"
    assert not _port_open(server.port) and not _port_open(server.pg_port)
    assert server.script("status", check=False).returncode == 3
    assert "not running" in server.script("stop").stdout  # stopping twice is fine


def test_script_rejects_an_unknown_command_in_one_line():
    result = subprocess.run(["bash", str(SCRIPT), "launch"], capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert result.stderr.strip() == "tracking-server: error: unknown command 'launch'; valid: start, stop, status, restart"


def test_script_rejects_a_bad_port(tmp_path):
    result = subprocess.run(["bash", str(SCRIPT), "start", "--dir", str(tmp_path), "--port", "99999"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert result.stderr.strip() == "tracking-server: error: ports must be integers in 1..65535; got '99999'"


def test_script_status_of_a_directory_never_used(tmp_path):
    result = subprocess.run(["bash", str(SCRIPT), "status", "--dir", str(tmp_path / "nothing")],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 3 and "never started" in result.stdout
    assert not (tmp_path / "nothing").exists()
