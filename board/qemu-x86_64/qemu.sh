#!/usr/bin/env bash
# Boots the qemu-x86_64 board: `qemu.sh IMAGE_DIR DISK [extra qemu arguments]`.
# Environment:
#   BLOO_HOSTFWD   comma-separated qemu hostfwd rules, e.g.
#                  "tcp:127.0.0.1:2222-:22,tcp:127.0.0.1:4443-:443"
#   BLOO_APPEND    extra kernel command-line words (tests: bloo.trial_deadline=20)
#   BLOO_MEMORY    guest memory in MiB (default 512)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
image_dir=$1
disk=$2
shift 2
netdev="user,id=n0,restrict=on"
if [ -n "${BLOO_HOSTFWD:-}" ]; then
    IFS=, read -ra rules <<<"$BLOO_HOSTFWD"
    for rule in "${rules[@]}"; do netdev+=",hostfwd=$rule"; done
fi
exec qemu-system-x86_64 -nographic -accel tcg -m "${BLOO_MEMORY:-512}" -smp 1 \
    -kernel "$image_dir/vmlinuz" -initrd "$image_dir/initramfs.cpio.gz" \
    -append "$(grep -v '^#' "$here/cmdline" | tr '\n' ' ') ${BLOO_APPEND:-}" \
    -drive "file=$disk,format=raw,if=virtio" \
    -netdev "$netdev" -device virtio-net-pci,netdev=n0 \
    "$@"
