#!/usr/bin/env bash
# Fuzz smoke run: builds every target once, replays fuzz/regressions/, then
# fuzzes each target for FUZZ_SECONDS (default 30) and prints libFuzzer's
# final stat line per target. Exits non-zero if any target crashes.
# Works from a fresh clone: corpora start empty under fuzz/corpus/ (ignored).
#
#   bash fuzz/smoke.sh                  # from the repository root
#   FUZZ_SECONDS=300 bash fuzz/smoke.sh # longer
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

seconds="${FUZZ_SECONDS:-30}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/target}"
export CARGO_TERM_COLOR=never
# The engine targets create databases: keep their fsyncs off the disk.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
  export TMPDIR=/dev/shm
fi

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz/smoke.sh: needs a nightly toolchain (rustup toolchain install nightly)" >&2
  exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

targets=$(cargo +nightly fuzz list)
cargo +nightly fuzz build

logs="$CARGO_TARGET_DIR/smoke"
mkdir -p "$logs"
failed=()
for t in $targets; do
  log="$logs/$t.log"
  if compgen -G "regressions/$t/*" >/dev/null; then
    if ! cargo +nightly fuzz run "$t" regressions/"$t"/* -- -rss_limit_mb=2048 >"$log" 2>&1; then
      echo "$t: a regression input fails (log: $log)"
      grep -E -A12 "panicked at|ERROR: (libFuzzer|AddressSanitizer)" "$log" | head -40 || true
      failed+=("$t")
      continue
    fi
  fi
  # The regression inputs also seed the corpus: the fuzzer starts from
  # requests that reach deep routes (a /txn body) instead of finding them.
  if compgen -G "regressions/$t/*" >/dev/null; then
    mkdir -p "corpus/$t" && cp -n regressions/"$t"/* "corpus/$t/"
  fi
  dict=()
  [ -f "dicts/$t.dict" ] && dict=(-dict="$here/dicts/$t.dict")
  if cargo +nightly fuzz run "$t" -- -max_total_time="$seconds" -rss_limit_mb=2048 "${dict[@]}" \
    >"$log" 2>&1; then
    echo "$t: $(grep -E '^Done [0-9]+ runs' "$log" | tail -1)"
  else
    echo "$t: CRASHED (log: $log)"
    grep -E -A30 "panicked at|ERROR: (libFuzzer|AddressSanitizer)" "$log" | head -60 || true
    grep -E "^(Test unit written|artifact_prefix)" "$log" || true
    failed+=("$t")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz smoke: FAILED: ${failed[*]}"
  exit 1
fi
echo "fuzz smoke: all targets ran ${seconds}s without a crash"
