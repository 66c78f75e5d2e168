#!/usr/bin/env bash
# `make image BOARD=qemu-x86_64`: kernel, initramfs, root filesystem, disk image and the
# first update bundle, from Debian's packages and build/bloo. No loop mounts, no root-only
# kernel feature: every file system is built in a file by its user-space tool
# (cpio, mksquashfs, mke2fs -d) and the disk is assembled with sfdisk and dd.
#
# Output (build/image/ unless BLOO_IMAGE_DIR says otherwise):
#   vmlinuz, initramfs.cpio.gz, rootfs.squashfs, disk.img, bloo-qemu-x86_64-<version>.bundle,
#   tunnel-ca.pem (the CA of this image's tunnel certificate, for the host's `bloo phone`)
# Signing: BLOO_SIGNING_KEY=path/to.key (its .pub beside it) signs the bundle and is the
# key the image trusts; without it a development key is made once in build/keys/.
set -euo pipefail
board_dir=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$board_dir/../.." && pwd)
board=$(basename "$board_dir")
bloo=${BLOO:-$root/build/bloo}
out=${BLOO_IMAGE_DIR:-$root/build/image}
version=${BLOO_IMAGE_VERSION:-$(cat "$root/VERSION")}
kernel=${BLOO_KERNEL:-$(ls /boot/vmlinuz-* | sort -V | tail -1)}
kernel_version=${kernel#*/vmlinuz-}
modules_dir=/lib/modules/$kernel_version
# Reproducible timestamps: the commit date, as the Makefile uses for the binary.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 0)}

say() { echo "image: $*"; }
[ -x "$bloo" ] || { echo "image: $bloo is missing: run 'make static' first" >&2; exit 1; }
[ -r "$kernel" ] || { echo "image: cannot read $kernel (install linux-image-amd64)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/bloo-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# Signing key and keyring.
if [ -n "${BLOO_SIGNING_KEY:-}" ]; then
    signing_key=$BLOO_SIGNING_KEY
else
    signing_key=$root/build/keys/development.key
    if [ ! -f "$signing_key" ]; then
        mkdir -p "$root/build/keys"
        "$bloo" bundle keygen --output "$root/build/keys/development" --comment "development key" >/dev/null
        say "made a development signing key: $signing_key"
    fi
fi
public_key=${signing_key%.key}.pub

# board.conf with the module list, for the initramfs and the root filesystem.
board_conf=$work/board.conf
modules=()
while read -r name _; do
    [[ -z "$name" || "$name" == \#* ]] && continue
    modules+=("$name")
done <"$board_dir/modules"
{
    cat "$board_dir/board.conf"
    printf 'modules='
    for name in "${modules[@]}"; do printf '/lib/modules/%s.ko ' "$name"; done
    echo
} >"$board_conf"

# --- initramfs: bloo as init, the board file, the modules -------------------------
initramfs=$work/initramfs
mkdir -p "$initramfs"/{bin,sbin,etc/bloo,lib/modules,proc,sys,dev,newroot}
cp "$bloo" "$initramfs/bin/bloo"
ln -s ../bin/bloo "$initramfs/sbin/bloo-init"
cp "$board_conf" "$initramfs/etc/bloo/board.conf"
for name in "${modules[@]}"; do
    path=$(find "$modules_dir/kernel" -name "$name.ko" -print -quit)
    [ -n "$path" ] || { echo "image: module $name not found in $modules_dir" >&2; exit 1; }
    cp "$path" "$initramfs/lib/modules/$name.ko"
done
(cd "$initramfs" && find . -mindepth 1 | LC_ALL=C sort |
    cpio -o -H newc --reproducible --owner=0:0 --quiet) | gzip -9n >"$out/initramfs.cpio.gz"
cp "$kernel" "$out/vmlinuz"

# --- root filesystem: busybox, bloo, dropbear, the overlay ------------------------
rootfs=$work/rootfs
mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,lib,proc,sys,dev,data,run,tmp,etc/bloo/keyring,etc/init.d}
cp /bin/busybox "$rootfs/bin/busybox"
while read -r applet; do
    [ -e "$rootfs/$applet" ] || ln -s /bin/busybox "$rootfs/$applet"
done < <(/bin/busybox --list-full)
cp "$bloo" "$rootfs/usr/bin/bloo"
ln -s bloo "$rootfs/usr/bin/bloo-cli"
# dropbear is dynamically linked: take its shared libraries and the loader along.
for program in /usr/sbin/dropbear /usr/bin/dropbearkey; do
    cp "$program" "$rootfs$program"
    ldd "$program" | awk '/=> \//{print $3} /^\t\/lib64/{print $1}' | while read -r library; do
        mkdir -p "$rootfs$(dirname "$library")"
        cp -L "$library" "$rootfs$library"
    done
done
cp -a "$root/rootfs/." "$rootfs/"
cp "$board_conf" "$rootfs/etc/bloo/board.conf"
cp "$board_dir/rc.board" "$rootfs/etc/init.d/rc.board"
cp "$public_key" "$rootfs/etc/bloo/keyring/$(basename "$public_key")"
ln -sfn /run "$rootfs/var"
ln -sfn /data/home "$rootfs/home"
ln -sfn /data/root "$rootfs/root"
echo "$version" >"$rootfs/etc/bloo/release"
rm -f "$out/rootfs.squashfs"
mksquashfs "$rootfs" "$out/rootfs.squashfs" -all-root -comp xz -Xbcj x86 -noappend -quiet >/dev/null

# --- data partition: the layout the first boot fills in ---------------------------
data=$work/data
mkdir -p "$data"/{config,cdr,log,ssh,root/.ssh,home/admin/.ssh,home/operator/.ssh}
cp "$root/rootfs/etc/bloo/default.conf" "$data/config/bloo.conf"
# The board's configuration, as the store's first commit: the factory default plus the
# address qemu's user networking forwards to. Without it the daemon would reconcile eth0
# to the factory default (no address) and cut the box off its forwarded ports.
mkdir -p "$data/config/commits"
{
    printf '#@ sequence 1\n#@ time %s\n#@ user factory\n#@ comment "board default: qemu-x86_64"\n' \
        "$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)"
    cat "$root/board/qemu-x86_64/bloo.conf"
} >"$data/config/commits/0000000001.conf"
chmod 0700 "$data/ssh" "$data/root"
# The tunnel's TLS identity (the board configuration listens on 443 with these files).
# Made per image build so that a flashed box serves TLS at once; operators replace it
# with their own certificate. A throw-away CA signs it: the host gets only the CA
# certificate ($out/tunnel-ca.pem, what `bloo phone --ca` trusts), and the CA's key dies
# with $work, so nothing else can ever be signed by it. The names are those the box is
# reached by: qemu's forwarded 127.0.0.1, its guest address, and bloo-appliance.
# The service user (uid/gid 100) reads it after the privilege drop, when a reload happens.
mkdir -p "$data/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=bloo appliance CA (image $version)" -keyout "$work/ca.key" -out "$out/tunnel-ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=bloo-appliance" \
    -keyout "$data/tls/key.pem" -out "$work/tunnel.csr" 2>/dev/null
printf 'subjectAltName=DNS:bloo-appliance,IP:127.0.0.1,IP:10.0.2.15\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n' \
    >"$work/tunnel.ext"
openssl x509 -req -in "$work/tunnel.csr" -CA "$out/tunnel-ca.pem" -CAkey "$work/ca.key" -days 3650 \
    -set_serial "0x$(openssl rand -hex 8)" -extfile "$work/tunnel.ext" -out "$data/tls/certificate.pem" 2>/dev/null
chown -R 100:100 "$data/tls"
chmod 0700 "$data/tls"
chmod 0600 "$data/tls/key.pem"

# --- disk: GPT with boot state, slot A, slot B, data --------------------------------
names=(); sizes=()
while read -r name size _; do
    [[ -z "$name" || "$name" == \#* ]] && continue
    names+=("$name"); sizes+=("$size")
done <"$board_dir/partitions"
mib=1048576
total=2   # 1 MiB before the first partition, 1 MiB for the backup GPT
for size in "${sizes[@]}"; do total=$((total + size)); done
disk=$out/disk.img
rm -f "$disk"
truncate -s $((total * mib)) "$disk"
start=1
script="label: gpt"$'\n'
declare -A offset length
for index in "${!names[@]}"; do
    name=${names[$index]}; size=${sizes[$index]}
    script+="start=$((start * 2048)), size=$((size * 2048)), type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=$name"$'\n'
    offset[$name]=$start; length[$name]=$size
    start=$((start + size))
done
sfdisk --quiet --no-reread --no-tell-kernel "$disk" <<<"$script"

"$bloo" update init-state --output "$work/bootstate.img" --version "$version" >/dev/null
mke2fs -q -t ext4 -L data -E root_owner=0:0 -d "$data" "$work/data.img" "${length[data]}M" >/dev/null
rootfs_bytes=$(stat -c %s "$out/rootfs.squashfs")
[ "$rootfs_bytes" -le $((length[rootfs-a] * mib)) ] || { echo "image: rootfs ($rootfs_bytes bytes) exceeds the slot" >&2; exit 1; }
put() { dd if="$1" of="$disk" bs=1M seek="${offset[$2]}" conv=notrunc,sparse status=none; }
put "$work/bootstate.img" bootstate
put "$out/rootfs.squashfs" rootfs-a
put "$work/data.img" data

# --- the first update bundle -----------------------------------------------------------
bundle=$out/bloo-$board-$version.bundle
"$bloo" bundle create --key "$signing_key" --rootfs "$out/rootfs.squashfs" --version "$version" \
    --board "$board" --output "$bundle" >/dev/null
"$bloo" bundle verify --public-key "$public_key" --board "$board" "$bundle" >/dev/null

say "kernel     $out/vmlinuz ($kernel_version)"
say "initramfs  $out/initramfs.cpio.gz $(stat -c %s "$out/initramfs.cpio.gz") bytes"
say "rootfs     $out/rootfs.squashfs $rootfs_bytes bytes"
say "disk       $disk $(stat -c %s "$disk") bytes ($(du -k "$disk" | cut -f1) KiB allocated)"
say "bundle     $bundle $(stat -c %s "$bundle") bytes, signed by $(basename "$public_key")"
say "tunnel CA  $out/tunnel-ca.pem (trust it with: bloo phone --ca $out/tunnel-ca.pem)"
