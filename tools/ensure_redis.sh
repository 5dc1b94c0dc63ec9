#!/usr/bin/env bash
# Make sure the Redis server the tests use is accepting connections.
# Starts a local redis-server (nothing kept on disk) if one is installed but down;
# otherwise says why the Redis suite will be skipped. Prints the URL to use on success.
set -u
host=127.0.0.1
port=6379

ready() {
  python3 - "$host" "$port" <<'PY'
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1) as s:
        s.sendall(b"PING\r\n")
        sys.exit(0 if s.recv(64).startswith(b"+PONG") else 1)
except OSError:
    sys.exit(1)
PY
}

if ! ready; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "starting redis-server on ${host}:${port}" >&2
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$port" --save "" \
      --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log >&2 || true
    for _ in $(seq 1 60); do ready && break; sleep 0.5; done
  fi
fi

if ready; then
  echo "redis://${host}:${port}/0"
else
  echo "Redis is not reachable on ${host}:${port}; its tests will be skipped" >&2
fi
