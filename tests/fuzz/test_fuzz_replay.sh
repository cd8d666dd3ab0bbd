#!/usr/bin/env bash
# Replays the committed corpus of every fuzz target (fuzz/corpus/NAME/)
# through the target, built by the normal compiler under ASan+UBSan
# (build/asan/fuzz/replay_NAME; `make test` builds them). One line per
# target; a crash, a sanitizer report or a leak fails it.
. "$(dirname "$0")/../lib.sh"
for src in "$TOP"/fuzz/fuzz_*.c; do
  name=$(basename "$src" .c); name=${name#fuzz_}
  n=$(find "$TOP/fuzz/corpus/$name" -maxdepth 1 -type f 2>/dev/null | wc -l)
  ok "fuzz corpus $name: $n inputs replay cleanly" "$TOP/build/asan/fuzz/replay_$name" "$TOP/fuzz/corpus/$name"
done
for dir in "$TOP"/fuzz/corpus/*/; do
  name=$(basename "$dir")
  check "corpus $name has a target" "[ -f '$TOP/fuzz/fuzz_$name.c' ]"
done
done_testing
