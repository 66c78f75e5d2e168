#!/usr/bin/env bash
# `make run`: builds the firmware image and boots it under qemu with the serial console on
# this terminal. Host ports on 127.0.0.1 are forwarded to the appliance:
#   SSH     127.0.0.1:${BLOO_SSH_PORT:-2222}    -> 22   (ssh -p 2222 admin@127.0.0.1)
#   tunnel  127.0.0.1:${BLOO_TUNNEL_PORT:-4443} -> 443  (TLS/TCP tunnel of the softphones)
# The disk is a copy (build/run/disk.img) kept between runs; BLOO_FRESH=1 starts from the
# built image again. Leave qemu with Ctrl-A X.
set -euo pipefail
cd "$(dirname "$0")/.."
board=${BOARD:-qemu-x86_64}
ssh_port=${BLOO_SSH_PORT:-2222}
tunnel_port=${BLOO_TUNNEL_PORT:-4443}

"board/$board/build-image.sh"
mkdir -p build/run
if [ "${BLOO_FRESH:-0}" = 1 ] || [ ! -f build/run/disk.img ] || [ build/image/disk.img -nt build/run/disk.img ]; then
    cp --sparse=always build/image/disk.img build/run/disk.img
    # Your SSH public key (BLOO_SSH_KEY, default ~/.ssh/id_ed25519.pub or id_rsa.pub) becomes
    # admin's authorized key, written into the data partition with debugfs (no mount).
    key=${BLOO_SSH_KEY:-$(ls ~/.ssh/id_ed25519.pub ~/.ssh/id_rsa.pub 2>/dev/null | head -1 || true)}
    if [ -n "$key" ] && [ -f "$key" ]; then
        start=$(sfdisk -d build/run/disk.img | awk -F'[=,]' '/name="data"/{gsub(/ /,"",$2); print $2}')
        debugfs -w -R "write $key /home/admin/.ssh/authorized_keys" "build/run/disk.img?offset=$((start * 512))" >/dev/null 2>&1 \
            && echo "run: $key is admin's SSH key"
    fi
fi
cat <<BANNER

  Bloophone ProxyServer appliance ($board) — $(build/bloo version)
    serial console : this terminal (Ctrl-A X quits qemu)
    SSH            : ssh -p $ssh_port admin@127.0.0.1   (keys in /data/home/admin/.ssh/authorized_keys)
    tunnel         : 127.0.0.1:$tunnel_port -> appliance port 443 (certificate's CA: build/image/tunnel-ca.pem)
    test call      : build/bloo phone call 0123456 --alias demo --secret bloo-demo-secret --appliances tls:127.0.0.1:$tunnel_port --ca build/image/tunnel-ca.pem --tone 1000 --expect-tone 2000 --duration 5
                     (to the lab gateway inside the appliance: a lab tool of the board's default configuration)
    update         : ssh -p $ssh_port admin@127.0.0.1 update install < build/image/bloo-$board-$(cat VERSION).bundle

BANNER
BLOO_HOSTFWD="tcp:127.0.0.1:$ssh_port-:22,tcp:127.0.0.1:$tunnel_port-:443" \
    exec "board/$board/qemu.sh" build/image build/run/disk.img
