#!/usr/bin/env bash
# Installs what weft needs (Debian 12, as root), then builds and runs the whole test suite:
#   release  — every test, including the install test (an outside project builds against `cmake --install`)
#   asan     — every test of the library under AddressSanitizer + UndefinedBehaviorSanitizer (-O1; the examples
#              and the weft command are tested in the release build)
#   tsan     — the concurrency tests under ThreadSanitizer
#   fuzz     — the HTTP request parser under libFuzzer (clang, ASan+UBSan) for a bounded time (counts as one test)
# Each configuration is built once with Ninja. Prints one closing line: "weft tests: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

presets=(release asan tsan fuzz)
if [ -n "${WEFT_TEST_PRESETS:-}" ]; then read -r -a presets <<<"$WEFT_TEST_PRESETS"; fi

logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT
passed=0
failed=0
status=0
failures=()
for p in "${presets[@]}"; do
  start=$(date +%s)
  if [ "$p" = fuzz ]; then
    echo "=== weft: fuzz the HTTP request parser for ${WEFT_FUZZ_SECONDS:-60} s"
    if bash scripts/fuzz.sh "${WEFT_FUZZ_SECONDS:-60}"; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1)); status=1; failures+=("fuzz: scripts/fuzz.sh")
    fi
    echo "=== weft: fuzz done in $(( $(date +%s) - start )) s"
    continue
  fi
  echo "=== weft: configure, build and test preset '$p'"
  cmake --preset "$p" >"$logdir/$p.configure" 2>&1 || { cat "$logdir/$p.configure"; exit 1; }
  cmake --build --preset "$p"
  set +e
  ctest --preset "$p" 2>&1 | tee "$logdir/$p.ctest"
  rc=${PIPESTATUS[0]}
  set -e
  # ctest closes with "N% tests passed, F tests failed out of T"
  line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$logdir/$p.ctest" | tail -n 1 || true)
  if [ -z "$line" ]; then
    echo "weft: preset '$p' ran no tests"
    status=1
    continue
  fi
  # ctest lists what failed after "The following tests FAILED:", one "  N - name (reason)" line each.
  while IFS= read -r t; do failures+=("$p: $t"); done < <(sed -n '/The following tests FAILED:/,$p' \
    "$logdir/$p.ctest" | grep -E '^[[:space:]]+[0-9]+ - ' | sed -E 's/^[[:space:]]+//')
  # ... and each failed test's output follows its "Test #N: name ...***Failed" line: keep the end of it for the
  # summary, so that a reader of the last lines sees why.
  awk 'function flush(  i) { if (keep) for (i = (n > 40 ? n - 40 : 0); i < n; i++) print buf[i % 40]; keep = 0 }
       /Test +#[0-9]+: .*\*\*\*/ {flush(); keep = 1; n = 0; print "--- " $0; next}
       /^ *Start +[0-9]+: / || /tests passed, / {flush()}
       keep {buf[n % 40] = $0; n++}
       END {flush()}' "$logdir/$p.ctest" >>"$logdir/failures" || true
  f=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
  t=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$line")
  passed=$((passed + t - f))
  failed=$((failed + f))
  [ "$rc" -eq 0 ] || status=1
  echo "=== weft: preset '$p' done in $(( $(date +%s) - start )) s"
done
if [ "${#failures[@]}" -gt 0 ]; then
  echo "=== weft: failed (their output is above, under each preset)"
  printf '  %s\n' "${failures[@]}"
  [ -s "$logdir/failures" ] && { echo "=== weft: the end of each failed test's output"; cat "$logdir/failures"; }
fi
echo "weft tests: $passed passed, $failed failed"
exit $status
