#!/usr/bin/env bash
# Runs `go test` with the arguments given (flags, then packages), then runs
# once more each package that failed while the test ClickHouse crashed.
#
# Debian's clickhouse-server 18.16 has been seen to die of a segmentation
# fault in its table locks (RWLockImpl::getLock) under the integration
# tests' load, about once in a few runs of the whole suite. The tests'
# ClickHouse is supervised (internal/testenv): it is started again and the
# tests after the crash go on, but the one running at that moment fails.
# Such a package is run again, once, and said loudly; a package that failed
# without a crash, or fails again, fails the run.
set -uo pipefail
GO=${GO:-go}

out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$GO" test "$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
[ "$rc" -eq 0 ] && exit 0

module=$("$GO" list -m)
# Each package's output ends with its result line (go test prints a
# package's output in one piece): the failed packages, and those of them
# whose output reports a crash of the test ClickHouse.
read -r -a failed < <(awk -v m="$module" '
  $1 == "FAIL" && index($2, m) == 1 { printf "%s ", $2 }' "$out")
read -r -a crashed < <(awk -v m="$module" '
  ($1 == "ok" || $1 == "FAIL" || $1 == "?") && index($2, m) == 1 {
    if ($1 == "FAIL" && crash) printf "%s ", $2
    crash = 0; next
  }
  /the test ClickHouse exited by itself/ { crash = 1 }' "$out")

if [ "${#failed[@]}" -eq 0 ] || [ "${#crashed[@]}" -eq 0 ]; then
  exit "$rc"
fi

flags=()
for a in "$@"; do
  case "$a" in
    ./* | */... | "$module"*) ;;
    *) flags+=("$a") ;;
  esac
done
echo
echo "=== ClickHouse 18.16 crashed while these packages ran: ${crashed[*]}"
echo "=== (a segmentation fault of the server, see its logs above); running them once more"
"$GO" test "${flags[@]}" "${crashed[@]}"
rerun=$?

others=0
for p in "${failed[@]}"; do
  case " ${crashed[*]} " in
    *" $p "*) ;;
    *) others=1 ;;
  esac
done
if [ "$rerun" -ne 0 ] || [ "$others" -ne 0 ]; then
  exit 1
fi
echo "=== the packages run again passed; the other packages had passed the first time"
exit 0
