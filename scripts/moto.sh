#!/usr/bin/env bash
# Local AWS for arc-orchestrator: moto in server mode, pinned, in a venv the project owns.
#   scripts/moto.sh install          create .venv-moto with the pinned moto[server] (idempotent)
#   scripts/moto.sh start [PIDFILE]  install if needed, start on a free 127.0.0.1 port, wait until it
#                                    answers, print the endpoint URL (http://127.0.0.1:PORT) on stdout
#   scripts/moto.sh stop PIDFILE     stop a server started with PIDFILE
set -euo pipefail
MOTO_VERSION="5.2.5"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${ARC_MOTO_VENV:-$root/.venv-moto}"

install() {
  if [ -x "$venv/bin/moto_server" ] && "$venv/bin/python" -c "import moto,sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
    return 0
  fi
  echo "installing moto[server]==$MOTO_VERSION into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

start() {
  install
  local pidfile="${1:-$root/.moto.pid}" port log
  port="$(free_port)"
  log="${pidfile%.pid}.log"
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 100); do
    if python3 - "$port" <<'PY' 2>/dev/null; then
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/", timeout=1)
PY
      echo "http://127.0.0.1:$port"
      return 0
    fi
    sleep 0.2
  done
  echo "moto did not start on 127.0.0.1:$port; log follows" >&2
  cat "$log" >&2
  return 1
}

stop() {
  local pidfile="${1:-$root/.moto.pid}"
  [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  rm -f "$pidfile"
}

case "${1:-}" in
  install) install ;;
  start) start "${2:-}" ;;
  stop) stop "${2:-}" ;;
  *) echo "usage: $0 install | start [PIDFILE] | stop [PIDFILE]" >&2; exit 2 ;;
esac
