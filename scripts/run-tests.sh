#!/usr/bin/env bash
# Runs the busted specs in tests/ under LuaJIT against build/libmoonstep.so (or
# $MOONSTEP_LIB), then prints one closing line: "N passed, N failed, N skipped".
# MOONSTEP_ASAN=1 preloads the sanitizer runtime for a -fsanitize build.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export MOONSTEP_HOME="$root"
export LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;${LUA_PATH:-};"
if [[ -n "${MOONSTEP_ASAN:-}" ]]; then
  export LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
  # LuaJIT's own allocations are never freed at exit by design: no leak report.
  export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  echo "run-tests: sanitizer build $MOONSTEP_LIB"
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
luajit /usr/bin/busted --output=utfTerminal "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}

# busted's summary: "12 successes / 0 failures / 1 error / 2 pending : 0.5 seconds"
summary="$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '[0-9]+ success' | tail -n 1)"
num() { echo "$summary" | grep -oE "[0-9]+ $1" | grep -oE '^[0-9]+' || echo 0; }
if [[ -z "$summary" ]]; then
  echo "run-tests: busted printed no summary (exit $rc): the run crashed"
  echo "0 passed, 1 failed"
  exit 1
fi
passed=$(num success); failed=$(( $(num failure) + $(num error) )); skipped=$(num pending)
echo "$passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 && $rc -eq 0 ]]
