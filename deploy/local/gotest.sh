#!/usr/bin/env bash
# Runs `go test` with the arguments given (flags, then packages), then runs
# again, at most twice, each package that failed while the test ClickHouse
# crashed.
#
# Debian's clickhouse-server 18.16 has been seen to die of a segmentation
# fault in its table locks (RWLockImpl::getLock, std::map erase) under the
# integration tests' load, in about half the runs of the whole suite, most
# often while cmd/ioc's browser test drives a busy node. The tests'
# ClickHouse is supervised (internal/testenv): it is started again and the
# tests after the crash go on, but the one running at that moment fails.
# Such a package is run again, alone, and said loudly; a package that fails
# without a crash fails the run, and so does one that crashed three times.
set -uo pipefail
GO=${GO:-go}

out=$(mktemp)
trap 'rm -f "$out"' EXIT
module=$("$GO" list -m)

# run ARGS…: runs go test, sets rc, failed (the packages that failed) and
# crashed (those of them whose output reports a crash of the test
# ClickHouse). go test prints each package's output in one piece, ending
# with its result line.
run() {
  "$GO" test "$@" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  read -r -a failed < <(awk -v m="$module" '
    $1 == "FAIL" && index($2, m) == 1 { printf "%s ", $2 }' "$out")
  read -r -a crashed < <(awk -v m="$module" '
    ($1 == "ok" || $1 == "FAIL" || $1 == "?") && index($2, m) == 1 {
      if ($1 == "FAIL" && crash) printf "%s ", $2
      crash = 0; next
    }
    /the test ClickHouse exited by itself/ { crash = 1 }' "$out")
}

flags=()
for a in "$@"; do
  case "$a" in
    ./* | */... | "$module"*) ;;
    *) flags+=("$a") ;;
  esac
done

run "$@"
reran=0
for attempt in 1 2; do
  [ "$rc" -eq 0 ] && break
  # A failure without a crash (or a build failure) is the run's answer.
  [ "${#crashed[@]}" -eq 0 ] && exit "$rc"
  [ "${#crashed[@]}" -ne "${#failed[@]}" ] && exit 1
  echo
  echo "=== ClickHouse 18.16 crashed while these packages ran: ${crashed[*]}"
  echo "=== (a segmentation fault of the server, see its logs above); running them again ($attempt of 2)"
  run "${flags[@]}" "${crashed[@]}"
  reran=1
done
[ "$rc" -ne 0 ] && exit "$rc"
[ "$reran" -eq 1 ] && echo "=== the packages run again passed; the other packages had passed the first time"
exit 0
