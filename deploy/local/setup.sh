#!/usr/bin/env bash
# Installs what ioc needs on a Debian/Ubuntu machine with Go: ClickHouse
# (server and client, from the distribution) and the Go modules. Safe to run
# again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

need_apt=()
command -v clickhouse-server >/dev/null 2>&1 || [ -x /usr/sbin/clickhouse-server ] || need_apt+=(clickhouse-server)
command -v clickhouse-client >/dev/null 2>&1 || need_apt+=(clickhouse-client)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} with apt-get"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  # Debian's package may start a system-wide server on port 9000; ioc runs
  # its own private one and leaves the system service as it is.
fi

if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then export PATH="$PATH:/usr/local/go/bin"; else
    echo "setup: Go is required (https://go.dev/doc/install)" >&2; exit 1
  fi
fi
# go.mod asks for Go 1.26: an older go either fetches that toolchain (which
# needs the network) or, with GOTOOLCHAIN=local, stops; say so plainly.
gov="$(go env GOVERSION 2>/dev/null || true)"
case "$gov" in
  go1.2[6-9]*|go1.[3-9][0-9]*|go[2-9]*) ;;
  *) [ "$(go env GOTOOLCHAIN 2>/dev/null)" = local ] && { echo "setup: Go ≥ 1.26 is required (found ${gov:-none}); see https://go.dev/doc/install, or unset GOTOOLCHAIN=local to let go fetch it" >&2; exit 1; } ;;
esac
go mod download

# The tests also read ioc's Arrow streams with an independent implementation
# (apache-arrow from npm, pinned by its lockfile), drive the web UI in
# Debian's chromium (with playwright-core from web/'s lockfile, which never
# downloads a browser of its own), and run ioc on a ClickHouse cluster of two
# servers with Debian's ZooKeeper.
if [ "${1:-}" = "--test" ]; then
  need_apt=()
  command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
  [ -x /usr/bin/chromium ] || need_apt+=(chromium)
  # ZooKeeper (with Java) for the tests that run ioc on a ClickHouse cluster.
  [ -f /usr/share/java/zookeeper.jar ] && command -v java >/dev/null 2>&1 || need_apt+=(zookeeper)
  if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing ${need_apt[*]} with apt-get"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  fi
  dir=query/sqlapi/testdata/arrowcheck
  if [ ! -d "$dir/node_modules/apache-arrow" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
  fi
fi
