#!/usr/bin/env bash
# Installs the Debian packages vmcas needs to build, test and run its demo,
# but only those that are missing, so a second run costs a few dpkg look-ups.
# `deps.sh fuzz` adds clang and its libFuzzer runtime, for `make fuzz` only;
# `deps.sh bench` the backup tools of the peer benchmark, for `make bench`.
set -euo pipefail
pkgs=(build-essential pkg-config libssl-dev libzstd-dev zlib1g-dev liblmdb-dev
      libmicrohttpd-dev libcurl4-openssl-dev nbdkit nbdkit-plugin-dev libnbd-dev
      libnbd-bin python3-libnbd qemu-utils libcmocka-dev libjansson-dev gnuplot-nox valgrind openssl perl e2fsprogs
      libsystemd-dev librados-dev)
[ "${1:-}" = fuzz ] && pkgs+=(clang libclang-rt-dev)
# `make test` only: JSON Schema checks, the completion, the Debian package
# build, the report in a real browser, a one-node Ceph cluster (tests/rados)
# and the VM tests: QEMU, a Debian kernel and busybox for the tiny guest
[ "${1:-}" = test ] && pkgs+=(python3-jsonschema bash-completion debhelper chromium fonts-dejavu-core
                               ceph-mon ceph-osd ceph-common
                               qemu-system-x86 linux-image-cloud-amd64 busybox-static cpio)
# `make bench` only: the tools bench/peers.sh compares vmcas with (it skips
# any that is missing)
[ "${1:-}" = bench ] && pkgs+=(borgbackup restic casync)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}" >&2
if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
