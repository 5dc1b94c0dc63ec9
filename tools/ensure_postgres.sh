#!/usr/bin/env bash
# Make sure the PostgreSQL server the tests use is accepting connections.
# Starts a local Debian cluster if one is installed but down; otherwise says why the
# PostgreSQL suite will be skipped. Prints the URL to use on success.
set -u
host=127.0.0.1
port=5432

ready() {
  python3 - "$host" "$port" <<'PY'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
except OSError:
    sys.exit(1)
PY
}

if ! ready; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    echo "starting PostgreSQL $version (cluster main)" >&2
    pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
    for _ in $(seq 1 60); do ready && break; sleep 0.5; done
  fi
fi

if ready; then
  echo "postgresql://postgres@${host}:${port}/test"
else
  echo "PostgreSQL is not reachable on ${host}:${port}; its tests will be skipped" >&2
fi
