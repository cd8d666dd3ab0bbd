#!/usr/bin/env bash
# Runs every test of vmcas and prints the closing line "N passed, N failed".
#
# - build/asan/tests/**/test_*   cmocka programs (ASan+UBSan), TAP output
# - tests/**/test_*.sh           shell tests against the real vmcas binary
#
# Each program speaks TAP ("ok N - name" / "not ok N - name"); a program
# that dies without a plan or exits non-zero counts as one more failure, and
# exit 77 is a skip. Logs go to build/test-logs/. Set TESTS=pattern to run
# only the tests whose path matches.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
logs=build/test-logs
rm -rf "$logs"; mkdir -p "$logs"
export VMCAS="$top/build/asan/vmcas"          # the binary under test
export VMCAS_PLAIN="$top/build/vmcas"         # optimised, for big data
export VMCAS_VG="$top/build/vg/vmcas"         # no sanitizer, for valgrind
export TOP="$top"
export CMOCKA_MESSAGE_OUTPUT=TAP
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=86
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export MALLOC_PERTURB_=165

pass=0 fail=0 skip=0
failed_names=()
progs=()
while IFS= read -r f; do progs+=("$f"); done < <(
  { find build/asan/tests -type f -name 'test_*' -perm -u+x 2>/dev/null
    find tests -type f -name 'test_*.sh'; } | sort)
for p in "${progs[@]}"; do
  [ -n "${TESTS:-}" ] && [[ "$p" != *${TESTS}* ]] && continue
  name=${p#build/asan/}; log="$logs/$(echo "$name" | tr '/' '_').log"
  start=$(date +%s)
  tmp=$(mktemp -d /tmp/vmcas-test.XXXXXX)
  if [[ "$p" == *.sh ]]; then
    (cd "$tmp" && TMPDIR="$tmp" timeout 600 bash "$top/$p") >"$log" 2>&1; rc=$?
  else
    (cd "$tmp" && TMPDIR="$tmp" timeout 600 "$top/$p") >"$log" 2>&1; rc=$?
  fi
  rm -rf "$tmp"
  ok=$(grep -cE '^ok [0-9]+' "$log"); nok=$(grep -cE '^not ok [0-9]+' "$log")
  sk=$(grep -cE '^ok [0-9]+.*# (SKIP|skip)' "$log")
  ok=$((ok - sk))
  if [ "$rc" = 77 ]; then
    skip=$((skip + 1)); status="SKIP"
  elif [ "$rc" != 0 ] && [ "$nok" = 0 ]; then
    nok=1; status="FAIL (exit $rc)"
  elif [ "$nok" != 0 ]; then status="FAIL"
  else status="ok"; fi
  pass=$((pass + ok)); fail=$((fail + nok)); skip=$((skip + sk))
  [ "$nok" != 0 ] && failed_names+=("$name")
  printf '%-44s %-14s %3d passed %3d failed  %ss\n' "$name" "$status" "$ok" "$nok" $(( $(date +%s) - start ))
  if [ "$nok" != 0 ]; then
    grep -E '^not ok|^#|ERROR|error|Sanitizer|runtime error' "$log" | head -40 | sed 's/^/    /'
  fi
done
if [ ${#failed_names[@]} -gt 0 ]; then
  echo "failed: ${failed_names[*]} (logs in $logs/)"
fi
if [ "$skip" -gt 0 ]; then
  echo "$pass passed, $fail failed, $skip skipped"
else
  echo "$pass passed, $fail failed"
fi
[ "$fail" = 0 ]
