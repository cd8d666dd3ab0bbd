#!/usr/bin/env bash
# Suspend on one host, resume on another: a real QEMU (TCG) guest, built
# from Debian packages at test time (tests/vm/make_guest.sh: the host's
# Debian kernel and a busybox initramfs), on parcels of a real `vmcas
# serve` on 127.0.0.1. Three hosts, each with its own key store, host
# cache and name. The guest counts on its serial console; its count goes
# on across hosts, a file it wrote on host A is read back from the disk
# on host B, the second version's memory image dedups against the first,
# and resume with --fetch demand runs the guest before the disk has come
# (against --fetch complete). A QEMU that fails to start, a device state
# that does not load, a parcel with no machine: clear errors, no process
# left behind, no version lost.
. "$TOP/tests/lib.sh"
. "$TOP/tests/server/server_lib.sh"
cd "$TMPDIR"
command -v qemu-system-x86_64 >/dev/null || skip_all "no qemu-system-x86_64 (Debian: qemu-system-x86)"
ls /boot/vmlinuz-* >/dev/null 2>&1 || skip_all "no kernel in /boot (Debian: linux-image-cloud-amd64)"
[ -x /bin/busybox ] || skip_all "no busybox (Debian: busybox-static)"
ok "the guest is built from Debian's kernel and busybox" bash "$TOP/tests/vm/make_guest.sh" guest
export VMCAS_PASSPHRASE="correct horse battery staple"
vmcas -s st init >/dev/null
export VMCAS_TOKEN=$(vmcas -s st user add alice | tail -1)
ok "the server starts" start_server st serve.log
host() { local h=$1; shift; ( VMCAS_HOST=$h VMCAS_KEYS=$TMPDIR/keys$h VMCAS_CACHE=$TMPDIR/cache$h exec "$VMCAS" -s "$URL" "$@" ); }
# on H CMD...: a command of host H that names no store (suspend, workspace)
on() { local h=$1; shift; ( VMCAS_HOST=$h VMCAS_KEYS=$TMPDIR/keys$h VMCAS_CACHE=$TMPDIR/cache$h exec "$VMCAS" "$@" ); }
jf() { json "$1" < "$2"; }
jb() { grep -o "\"$1\": *[a-z]*" "$2" | head -1 | sed 's/.*: *//'; }
schema() { /usr/bin/python3 - "$TOP/docs/schema/$1.schema.json" "$2" <<'EOF'
import json, sys, jsonschema
jsonschema.validate(json.load(open(sys.argv[2])), json.load(open(sys.argv[1])))
EOF
}
# waits (at most $3 s) until file $1 has a line matching $2
await() { local i=0; while ! grep -q "$2" "$1" 2>/dev/null; do i=$((i + 1)); [ $i -gt $(($3 * 5)) ] && return 1; sleep 0.2; done; }
last_tick() { grep -o '^tick [0-9]*' "$1" | tail -1 | cut -d' ' -f2; }
first_tick() { grep -o '^tick [0-9]*' "$1" | head -1 | cut -d' ' -f2; }
procs() { pgrep -f "vmcas-vm|nbdkit.*dir=$TMPDIR" | wc -l; }
trap 'pkill -9 -f "qemu-system-x86_64 -name vmcas-" 2>/dev/null; pkill -f "nbdkit.*dir=$TMPDIR" 2>/dev/null; cleanup_servers' EXIT

ok "host A makes a VM parcel from the kernel and initramfs" host A parcel create vm --policy all --chunk-size 64K \
  --memory-size 128M --disk-size 64M --from-qemu guest/vmlinuz,guest/initrd.gz --append "console=ttyS0 quiet"
ok "host B logs in: its keys come sealed from the server" env VMCAS_KEYS=$TMPDIR/keysB "$VMCAS" login "$URL"
ok "host C logs in" env VMCAS_KEYS=$TMPDIR/keysC "$VMCAS" login "$URL"

# --- host A: version 1 has no device state: the guest boots
ok "host A: resume boots version 1" host A resume vm --workspace $TMPDIR/wsA --accel tcg --json
cp last.out rA.json
check "it booted (resumed: $(jb resumed rA.json)) under $(grep -o '"accel": "[a-z]*"' rA.json)" \
  '[ "$(jb resumed rA.json)" = false ] && [ "$(jb checked_out rA.json)" = true ]'
check "the resume --json fits its schema" 'schema resume rA.json'
check "QEMU and the disk server run in the background" '[ "$(procs)" -ge 2 ]'
check "the guest boots, formats its disk, writes its file and counts" 'await wsA/console.log "^file: written" 120'
fails "a second resume into the running workspace is refused" "already runs in" host A resume vm --workspace $TMPDIR/wsA
fails "host B cannot resume while host A holds the lease" "leased to host 'A'" host B resume vm --workspace $TMPDIR/wsB0
ok "host A: suspend --checkin --release" on A suspend wsA --checkin --release --json
cp last.out sA.json
check "the suspend --json fits its schema" 'schema suspend sA.json'
check "version 2 holds a device state of $(jf device_state_bytes sA.json) bytes" \
  '[ "$(jf version sA.json)" = 2 ] && [ "$(jf device_state_bytes sA.json)" -gt 10000 ]'
check "no QEMU or disk server is left on host A" 'sleep 1; [ "$(procs)" = 0 ]'
tA=$(last_tick wsA/console.log)

# --- host B: the guest goes on where it stopped, the disk on demand
ok "host B: resume --fetch demand loads the device state" host B resume vm --workspace $TMPDIR/wsB --fetch demand --json
cp last.out rB.json
check "it resumed version 2 in $(jf seconds rB.json | cut -c1-5) s, $(jf received_bytes rB.json) bytes received, $(jf disk_chunks_present rB.json) of $(jf disk_chunks rB.json) disk chunks here" \
  '[ "$(jb resumed rB.json)" = true ] && [ "$(jf version rB.json)" = 2 ] && [ "$(jf disk_chunks_present rB.json)" -lt "$(jf disk_chunks rB.json)" ]'
check "the guest counts on from $tA (host B's first tick: $(await wsB/console.log '^tick' 60; first_tick wsB/console.log))" \
  '[ "$(first_tick wsB/console.log)" -gt "$tA" ] && [ "$(first_tick wsB/console.log)" -le $((tA + 3)) ]'
check "it did not boot again" '! grep -q "guest: booted" wsB/console.log'
check "the file the guest wrote on host A is read back from the disk on host B" 'await wsB/console.log "^file: written by the guest before suspend" 60'
ok "host B: suspend --checkin --release" on B suspend wsB --checkin --release --json
cp last.out sB.json
mem_chunks=$((128 * 1024 / 64))
check "version 3: $(jf new_chunks sB.json) new chunks of $(jf chunks sB.json) ($mem_chunks of memory), $(jf sent_data_bytes sB.json) bytes sent: the memory dedups against version 2" \
  '[ "$(jf version sB.json)" = 3 ] && [ "$(jf new_chunks sB.json)" -lt $((mem_chunks / 2)) ]'
tB=$(last_tick wsB/console.log)

# --- host C: --fetch complete, for comparison; then errors
ok "host C: resume --fetch complete" host C resume vm --workspace $TMPDIR/wsC --fetch complete --json
cp last.out rC.json
echo "# demand: $(jf received_bytes rB.json) bytes before the guest ran, $(jf seconds rB.json | cut -c1-5) s;" \
  "complete: $(jf received_bytes rC.json) bytes, $(jf seconds rC.json | cut -c1-5) s"
check "demand received less before the guest ran than complete" \
  '[ "$(jf received_bytes rB.json)" -lt "$(jf received_bytes rC.json)" ] && [ "$(jf disk_chunks_present rC.json)" = "$(jf disk_chunks rC.json)" ]'
check "the count goes on on host C too" 'await wsC/console.log "^tick" 60; [ "$(first_tick wsC/console.log)" -gt "$tB" ]'
ok "host C: suspend without checkin" on C suspend wsC
ok "host C resumes its own workspace with one more device" host C resume vm --workspace $TMPDIR/wsC -- -device virtio-rng-pci
ok "and suspends it (its device state now has that device)" on C suspend wsC
fails "a device state that does not load into this QEMU is a clear error" "does not load into QEMU" \
  host C resume vm --workspace $TMPDIR/wsC
check "and leaves no process behind" 'sleep 0.5; [ "$(procs)" = 0 ]'
ok "resumed with the device, the guest goes on" host C resume vm --workspace $TMPDIR/wsC -- -device virtio-rng-pci
ok "host C suspends it" on C suspend wsC --json
fails "a QEMU that does not start is a clear error" "QEMU did not start" \
  host C resume vm --workspace $TMPDIR/wsC -- -no-such-option
check "and leaves no process behind" 'sleep 0.5; [ "$(procs)" = 0 ]'
fails "suspend where no VM runs is a clear error" "no VM runs in" on C suspend wsC
check "no version was lost: the parcel is at version 3" '[ "$(host A log vm --json | json latest_version)" = 3 ]'
ok "host C checks its workspace in" on C -q workspace checkin wsC --release
check "version 4 resumes nowhere but where it has the device: the store is at 4" '[ "$(host A log vm --json | json latest_version)" = 4 ]'

# --- --from-disk: a raw disk image that boots through the BIOS (a boot
# sector that prints one line to the serial port and halts)
perl -e '$m = "vmcas-mbr: booted from the disk\r\n\0";
  $c = pack("H*", "31c08ed8be157cbaf803ac84c07403eeebf8f4ebfd") . $m;
  print $c, "\0" x (510 - length $c), "\x55\xaa", "\0" x (1048576 - 512)' > boot.img
ok "host A makes a VM parcel from a raw disk image" host A parcel create mbr --policy ip --memory-size 16M --from-disk boot.img
ok "host A: resume boots the disk" host A resume mbr --workspace $TMPDIR/wsM --json
check "the BIOS ran its boot sector" 'await wsM/console.log "vmcas-mbr: booted from the disk" 60'
ok "host A: suspend --checkin --release" on A suspend wsM --checkin --release
ok "host B logs in again: the new parcel's key" env VMCAS_KEYS=$TMPDIR/keysB "$VMCAS" login "$URL"
ok "host B: resume it from its device state" host B resume mbr --workspace $TMPDIR/wsM2 --json
check "it resumed (resumed: $(jb resumed last.out)) and did not boot again" \
  '[ "$(jb resumed last.out)" = true ] && ! grep -q "vmcas-mbr" wsM2/console.log'
ok "host B: suspend" on B suspend wsM2
host B resume mbr --workspace $TMPDIR/wsM2 --foreground > fg.out 2>&1 &
fg=$!
check "resume --foreground stays while the VM runs" 'await wsM2/qemu.pid . 60 && sleep 1 && kill -0 $fg'
ok "host B: suspend --checkin --release of the foreground VM" on B suspend wsM2 --checkin --release
rc=0; wait $fg || rc=$?
check "and resume --foreground returns 0 once QEMU is gone (rc $rc)" '[ $rc = 0 ] && [ "$(procs)" = 0 ]'

# --- a parcel of plain images has no machine
head -c 1048576 /dev/urandom > m.img; truncate -s 16M m.img; truncate -s 1M d.img
host A -q parcel create plain --policy ip --memory-size 16M --disk-size 1M >/dev/null
host A -q checkin plain --memory m.img --disk d.img >/dev/null
fails "resuming a parcel with no machine says so" "has no machine to run" host A resume plain --workspace $TMPDIR/wsP
fails "resume needs a workspace" "--workspace DIR is required" host A resume vm
fails "a bad --accel is a usage error" "--accel is tcg or kvm" host A resume vm --workspace x --accel xen
fails "--release without --checkin is a usage error" "--release goes with --checkin" on A suspend wsA --release
fails "--from-qemu without an initramfs is a usage error" "KERNEL,INITRD" host A parcel create v2 --policy ip --memory-size 64M --disk-size 8M --from-qemu guest/vmlinuz
fails "a VM's RAM is whole MiB" "whole number of MiB" host A parcel create v3 --policy ip --memory-size 1000000 --disk-size 8M --from-qemu guest/vmlinuz,guest/initrd.gz
ok "verify --full on the server's store" vmcas -s st verify --full
ok "the server stops" stop_server TERM
done_testing
