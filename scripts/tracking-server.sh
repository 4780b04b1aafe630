#!/usr/bin/env bash
# A team's MLflow tracking server: PostgreSQL (Debian's `postgresql` package) + `mlflow server`
# with MLflow's basic-auth app (logins, per-experiment permissions). Everything lives under one
# directory the user chooses.
#
#   scripts/tracking-server.sh start|stop|status|restart [--dir DIR] [--host H] [--port P] [--pg-port P]
#
# Settings (options win over the environment):
#   ALSWEEP_SERVER_DIR     where everything lives (default ./tracking-server)
#   ALSWEEP_SERVER_HOST    interface MLflow listens on (default 127.0.0.1, loopback only)
#   ALSWEEP_SERVER_PORT    MLflow's port (default 5000)
#   ALSWEEP_PG_PORT        PostgreSQL's port, always on 127.0.0.1 (default 5433)
#   ALSWEEP_SERVER_WORKERS MLflow worker processes (default 2)
#   ALSWEEP_SERVER_ALLOWED_HOSTS  Host headers MLflow accepts besides localhost and private IPs
#                          (its --allowed-hosts), e.g. mlflow.lab.example.org,mlflow.lab.example.org:5000
#   ALSWEEP_DEFAULT_PERMISSION  what a user may do on experiments nobody granted them:
#                          NO_PERMISSIONS (default: a group sees only its own experiments and
#                          those shared with it), READ, USE, EDIT or MANAGE
#   ALSWEEP_PYTHON         the Python with alsweep[server] installed (default: the checkout's
#                          .venv/bin/python, else python3)
#   ALSWEEP_PG_BIN         PostgreSQL's programs (default: the newest /usr/lib/postgresql/*/bin)
#   MLFLOW_AUTH_ADMIN_USERNAME / MLFLOW_AUTH_ADMIN_PASSWORD
#                          the admin login, used when the server first starts on an empty user
#                          store. Without them, `admin` and a generated password are written to
#                          DIR/admin.credentials (mode 0600, in the format of ~/.mlflow/credentials).
#   MLFLOW_FLASK_SERVER_SECRET_KEY   the auth app's CSRF key (default: generated once into DIR/secrets)
#   MLFLOW_SERVER_ENABLE_JOB_EXECUTION  MLflow's job executor for GenAI scorers (default false
#                          here: alsweep does not use it, and it costs about 8 processes)
#   ALSWEEP_SERVER_START_TIMEOUT  seconds to wait for MLflow to answer /health (default 180)
#
# Layout of DIR:
#   postgres/data  postgres/run (socket)  postgres/postgres.log   the PostgreSQL cluster
#   artifacts/     the artifact root (--artifacts-destination); clients upload through the server
#   mlflow.log  mlflow.pid  server.env (host and ports of the last start)
#   basic_auth.ini  pgpass  secrets  admin.credentials             mode 0600; never printed
#
# PostgreSQL refuses to run as root: as root, the cluster is owned and run by the `postgres`
# user (runuser), as Debian's own clusters are, and DIR must be reachable by that user.
# Passwords never appear on a command line or in a log: the database password reaches libpq
# through PGPASSFILE, the admin password reaches MLflow through its environment.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CHECKOUT="$(dirname "$SCRIPT_DIR")"
DB_ROLE=mlflow
DB_NAME=mlflow
AUTH_DB_NAME=mlflow_auth
HEALTH_TIMEOUT=${ALSWEEP_SERVER_START_TIMEOUT:-180}

die() { echo "tracking-server: error: $*" >&2; exit 1; }
say() { echo "tracking-server: $*"; }

# The header comment above is the help text.
usage() {
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
  exit "${1:-2}"
}

command=${1:-}
[ -n "$command" ] || usage 2
shift
DIR=${ALSWEEP_SERVER_DIR:-./tracking-server}
HOST=${ALSWEEP_SERVER_HOST:-}
PORT=${ALSWEEP_SERVER_PORT:-}
PG_PORT=${ALSWEEP_PG_PORT:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR=${2:?--dir needs a value}; shift 2 ;;
    --host) HOST=${2:?--host needs a value}; shift 2 ;;
    --port) PORT=${2:?--port needs a value}; shift 2 ;;
    --pg-port) PG_PORT=${2:?--pg-port needs a value}; shift 2 ;;
    -h|--help) usage 0 ;;
    *) die "unknown option '$1'; valid: --dir, --host, --port, --pg-port" ;;
  esac
done
case "$command" in
  start|stop|status|restart) ;;
  -h|--help|help) usage 0 ;;
  *) die "unknown command '$command'; valid: start, stop, status, restart" ;;
esac

if [ "$command" = start ]; then
  mkdir -p "$DIR"
elif [ ! -d "$DIR" ]; then
  say "nothing at $DIR (never started there)"
  [ "$command" = status ] && exit 3
  exit 0
fi
DIR="$(cd "$DIR" && pwd)"
PG_DIR=$DIR/postgres
PGDATA=$PG_DIR/data
PG_SOCKET_DIR=$PG_DIR/run
PG_LOG=$PG_DIR/postgres.log
ARTIFACTS=$DIR/artifacts
MLFLOW_LOG=$DIR/mlflow.log
MLFLOW_PID=$DIR/mlflow.pid
SERVER_ENV=$DIR/server.env
AUTH_INI=$DIR/basic_auth.ini
PGPASS=$DIR/pgpass
SECRETS=$DIR/secrets
ADMIN_CREDENTIALS=$DIR/admin.credentials

# The host and ports of the last start, so that `status` and `stop` need no options.
if [ -f "$SERVER_ENV" ]; then
  # shellcheck disable=SC1090  # written by this script: three KEY=VALUE lines
  . "$SERVER_ENV"
fi
HOST=${HOST:-${LAST_HOST:-127.0.0.1}}
PORT=${PORT:-${LAST_PORT:-5000}}
PG_PORT=${PG_PORT:-${LAST_PG_PORT:-5433}}
for value in "$PORT" "$PG_PORT"; do
  [[ "$value" =~ ^[0-9]+$ ]] && [ "$value" -ge 1 ] && [ "$value" -le 65535 ] \
    || die "ports must be integers in 1..65535; got '$value'"
done
URL_HOST=$HOST
[ "$HOST" = 0.0.0.0 ] && URL_HOST=127.0.0.1
URL="http://$URL_HOST:$PORT"

if [ "$(id -u)" = 0 ]; then
  PG_USER=postgres
  as_pg() { runuser -u "$PG_USER" -- "$@"; }
else
  PG_USER=$(id -un)
  as_pg() { "$@"; }
fi

find_pg_bin() {
  if [ -n "${ALSWEEP_PG_BIN:-}" ]; then
    [ -x "$ALSWEEP_PG_BIN/pg_ctl" ] || die "ALSWEEP_PG_BIN=$ALSWEEP_PG_BIN has no pg_ctl"
    echo "$ALSWEEP_PG_BIN"; return
  fi
  local candidate
  candidate=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$candidate" ] && [ -x "$candidate/initdb" ] \
    || die "PostgreSQL is not installed: run 'apt-get install postgresql' (or set ALSWEEP_PG_BIN to the directory of initdb and pg_ctl)"
  echo "$candidate"
}

find_python() {
  if [ -n "${ALSWEEP_PYTHON:-}" ]; then echo "$ALSWEEP_PYTHON"
  elif [ -x "$CHECKOUT/.venv/bin/python" ]; then echo "$CHECKOUT/.venv/bin/python"
  else command -v python3 || die "no python3; set ALSWEEP_PYTHON"
  fi
}

random_secret() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }

# Write a file readable by its owner only, without a moment in which it is readable by others.
write_private() {
  local path=$1
  (umask 077 && cat > "$path")
  chmod 600 "$path"
}

pg_running() { [ -f "$PGDATA/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" status -D "$PGDATA" >/dev/null 2>&1; }

mlflow_pid() {
  [ -f "$MLFLOW_PID" ] || return 1
  local pid
  pid=$(cat "$MLFLOW_PID")
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

healthy() { "$PYTHON" - "$URL/health" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=3) as response:
    sys.exit(0 if response.status == 200 else 1)
EOF
}

port_in_use() { "$PYTHON" - "$1" "$2" <<'EOF' >/dev/null 2>&1
import socket, sys
with socket.socket() as s:
    s.settimeout(1)
    sys.exit(0 if s.connect_ex((sys.argv[1], int(sys.argv[2]))) == 0 else 1)
EOF
}

ensure_secrets() {
  if [ ! -f "$PGPASS" ]; then
    # libpq's password file: host:port:database:user:password
    echo "127.0.0.1:*:*:$DB_ROLE:$(random_secret)" | write_private "$PGPASS"
  fi
  if [ -z "${MLFLOW_FLASK_SERVER_SECRET_KEY:-}" ] && [ ! -f "$SECRETS" ]; then
    echo "MLFLOW_FLASK_SERVER_SECRET_KEY=$(random_secret)" | write_private "$SECRETS"
  fi
  if [ -z "${MLFLOW_AUTH_ADMIN_PASSWORD:-}" ] && [ ! -f "$ADMIN_CREDENTIALS" ]; then
    printf '[mlflow]\nmlflow_tracking_username = %s\nmlflow_tracking_password = %s\n' \
      "${MLFLOW_AUTH_ADMIN_USERNAME:-admin}" "$(random_secret)" | write_private "$ADMIN_CREDENTIALS"
    say "generated the admin login into $ADMIN_CREDENTIALS (mode 0600)"
  fi
}

start_postgres() {
  mkdir -p "$PG_DIR"
  if [ "$(id -u)" = 0 ]; then
    chown "$PG_USER:" "$PG_DIR"
    as_pg test -w "$PG_DIR" \
      || die "the '$PG_USER' user cannot write to $PG_DIR (PostgreSQL refuses to run as root, so it runs as '$PG_USER'); make every parent of $DIR searchable (chmod o+x) or choose a directory such as /srv/alsweep-tracking"
  fi
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    say "creating the PostgreSQL cluster in $PGDATA"
    as_pg mkdir -p "$PGDATA" "$PG_SOCKET_DIR"
    # local (socket) logins are the cluster owner's only; TCP logins need a password
    as_pg "$PG_BIN/initdb" -D "$PGDATA" -U "$PG_USER" --auth-local=peer --auth-host=scram-sha-256 \
      --encoding=UTF8 --no-instructions >"$PG_DIR/initdb.log" 2>&1 \
      || die "initdb failed; see $PG_DIR/initdb.log"
  fi
  if pg_running; then
    say "PostgreSQL already running (port $PG_PORT)"
  else
    port_in_use 127.0.0.1 "$PG_PORT" && die "port $PG_PORT (PostgreSQL) is taken; choose another with --pg-port"
    as_pg mkdir -p "$PG_SOCKET_DIR"
    as_pg "$PG_BIN/pg_ctl" start -D "$PGDATA" -l "$PG_LOG" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_SOCKET_DIR" >/dev/null \
      || die "PostgreSQL did not start; see $PG_LOG"
    say "PostgreSQL started (127.0.0.1:$PG_PORT, data $PGDATA)"
  fi
  # The role and both databases, created once; the password is read from pgpass by psql's stdin.
  local password psql
  password=$(cut -d: -f5- "$PGPASS")
  psql=("$PG_BIN/psql" -h "$PG_SOCKET_DIR" -p "$PG_PORT" -U "$PG_USER" -d postgres -v ON_ERROR_STOP=1 -qtA)
  if [ "$(as_pg "${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = '$DB_ROLE'")" != 1 ]; then
    printf "CREATE ROLE %s LOGIN PASSWORD '%s';\n" "$DB_ROLE" "$password" | as_pg "${psql[@]}" >/dev/null
  fi
  local db
  for db in "$DB_NAME" "$AUTH_DB_NAME"; do
    if [ "$(as_pg "${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
      as_pg "${psql[@]}" -c "CREATE DATABASE $db OWNER $DB_ROLE" >/dev/null
    fi
  done
}

write_auth_ini() {
  local permission=${ALSWEEP_DEFAULT_PERMISSION:-NO_PERMISSIONS}
  case "$permission" in
    NO_PERMISSIONS|READ|USE|EDIT|MANAGE) ;;
    *) die "ALSWEEP_DEFAULT_PERMISSION must be one of NO_PERMISSIONS, READ, USE, EDIT, MANAGE; got '$permission'" ;;
  esac
  # No password here: the admin's comes from the environment, the database's from PGPASSFILE.
  write_private "$AUTH_INI" <<EOF
[mlflow]
default_permission = $permission
database_uri = postgresql+psycopg2://$DB_ROLE@127.0.0.1:$PG_PORT/$AUTH_DB_NAME
admin_username = ${MLFLOW_AUTH_ADMIN_USERNAME:-admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
EOF
}

# Read KEY from an INI-like or KEY=VALUE file written by this script.
read_value() { sed -n "s/^$2 *[=] *//p" "$1" | head -n 1; }

start_mlflow() {
  if pid=$(mlflow_pid); then
    if healthy; then say "MLflow already running at $URL (pid $pid)"; return; fi
    die "an MLflow process (pid $pid) is running but $URL/health does not answer; run '$0 stop --dir $DIR' first"
  fi
  port_in_use "$URL_HOST" "$PORT" && die "port $PORT (MLflow) is taken by another program; choose another with --port"
  "$PYTHON" -c "import mlflow, psycopg2, flask_wtf" 2>/dev/null \
    || die "$PYTHON lacks the server packages: install them with \"$PYTHON -m pip install -e '$CHECKOUT[server]'\""
  mkdir -p "$ARTIFACTS"
  write_auth_ini
  local admin_user admin_password secret_key
  admin_user=${MLFLOW_AUTH_ADMIN_USERNAME:-$(read_value "$ADMIN_CREDENTIALS" mlflow_tracking_username 2>/dev/null || true)}
  admin_password=${MLFLOW_AUTH_ADMIN_PASSWORD:-$(read_value "$ADMIN_CREDENTIALS" mlflow_tracking_password 2>/dev/null || true)}
  secret_key=${MLFLOW_FLASK_SERVER_SECRET_KEY:-$(read_value "$SECRETS" MLFLOW_FLASK_SERVER_SECRET_KEY)}
  : >"$MLFLOW_LOG"
  chmod 600 "$MLFLOW_LOG"
  # setsid: MLflow's workers share one process group, so `stop` ends them all
  (
    cd "$DIR"
    export PGPASSFILE="$PGPASS" MLFLOW_AUTH_CONFIG_PATH="$AUTH_INI" MLFLOW_DISABLE_TELEMETRY=true
    export MLFLOW_AUTH_ADMIN_USERNAME="${admin_user:-admin}" MLFLOW_AUTH_ADMIN_PASSWORD="$admin_password"
    export MLFLOW_FLASK_SERVER_SECRET_KEY="$secret_key"
    # the job executor (GenAI scorers, ~8 processes) is not used by alsweep; opt in with =true
    export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"
    exec setsid "$PYTHON" -m mlflow server \
      --backend-store-uri "postgresql+psycopg2://$DB_ROLE@127.0.0.1:$PG_PORT/$DB_NAME" \
      --artifacts-destination "$ARTIFACTS" --serve-artifacts \
      --host "$HOST" --port "$PORT" --workers "${ALSWEEP_SERVER_WORKERS:-2}" \
      --app-name basic-auth ${ALSWEEP_SERVER_ALLOWED_HOSTS:+--allowed-hosts "$ALSWEEP_SERVER_ALLOWED_HOSTS"}
  ) </dev/null >>"$MLFLOW_LOG" 2>&1 &
  echo $! >"$MLFLOW_PID"
  local waited=0
  until healthy; do
    if ! kill -0 "$(cat "$MLFLOW_PID")" 2>/dev/null; then
      rm -f "$MLFLOW_PID"
      echo "tracking-server: error: MLflow exited during start-up; the end of $MLFLOW_LOG:" >&2
      tail -n 15 "$MLFLOW_LOG" >&2
      exit 1
    fi
    [ "$waited" -lt "$HEALTH_TIMEOUT" ] \
      || die "MLflow did not answer $URL/health within ${HEALTH_TIMEOUT}s; see $MLFLOW_LOG (stop it with '$0 stop --dir $DIR')"
    sleep 1
    waited=$((waited + 1))
  done
  say "MLflow started at $URL (pid $(cat "$MLFLOW_PID"), basic-auth, artifacts in $ARTIFACTS, log $MLFLOW_LOG)"
}

stop_mlflow() {
  local pid
  if pid=$(mlflow_pid); then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    say "MLflow stopped (pid $pid)"
  else
    say "MLflow is not running"
  fi
  rm -f "$MLFLOW_PID"
}

stop_postgres() {
  if pg_running; then
    as_pg "$PG_BIN/pg_ctl" stop -D "$PGDATA" -m fast -w -t 60 >/dev/null || die "PostgreSQL did not stop; see $PG_LOG"
    say "PostgreSQL stopped"
  else
    say "PostgreSQL is not running"
  fi
}

PG_BIN=$(find_pg_bin)
PYTHON=$(find_python)

case "$command" in
  start)
    [ "$(id -u)" = 0 ] && chmod 755 "$DIR"  # the postgres user must reach postgres/ inside it
    ensure_secrets
    start_postgres
    printf 'LAST_HOST=%s\nLAST_PORT=%s\nLAST_PG_PORT=%s\n' "$HOST" "$PORT" "$PG_PORT" >"$SERVER_ENV"
    start_mlflow
    ;;
  stop)
    stop_mlflow
    stop_postgres
    ;;
  restart)
    "$0" stop --dir "$DIR"
    "$0" start --dir "$DIR" --host "$HOST" --port "$PORT" --pg-port "$PG_PORT"
    ;;
  status)
    up=0
    if pg_running; then say "PostgreSQL running (127.0.0.1:$PG_PORT, data $PGDATA)"; up=$((up + 1))
    else say "PostgreSQL stopped"; fi
    if pid=$(mlflow_pid) && healthy; then say "MLflow running at $URL (pid $pid)"; up=$((up + 1))
    elif pid=$(mlflow_pid); then say "MLflow process $pid is alive but $URL/health does not answer"
    else say "MLflow stopped"; fi
    # LSB status codes: 0 running, 3 stopped; 1 when only part of it runs
    case $up in 2) exit 0 ;; 0) exit 3 ;; *) exit 1 ;; esac
    ;;
esac
