#!/usr/bin/env bash
# Store throughput at 4 KiB and 64 KiB chunks (bench_store.c).
set -eu
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/a"; "$BENCH_BIN/bench_store" "$tmp/a" 200000 4096
mkdir -p "$tmp/b"; "$BENCH_BIN/bench_store" "$tmp/b" 20000 65536
