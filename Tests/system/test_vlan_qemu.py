"""802.1Q VLANs on a real Debian kernel under qemu, for hosts whose kernel lacks 8021q
(containers): the daemon creates VLAN sub-interfaces with MTU and addresses, leaves an
unmanaged interface alone, removes a VLAN that a reloaded configuration (SIGHUP) drops,
and stops with status 0. The configuration store comes from a daemon run on the host."""
import glob
import gzip
import os
import re
import shutil
import subprocess

import pytest

from bloo_daemon import accounts, base_config, daemons  # noqa: F401  (fixtures)

CONFIG_1 = """set interfaces d0 address 192.0.2.1/24
set interfaces d0 vlan 100 address 198.51.100.1/24
set interfaces d0 vlan 100 mtu 1400
set interfaces d0 vlan 200 mtu 1500
"""
CONFIG_2 = """set interfaces d0 address 192.0.2.1/24
set interfaces d0 vlan 200 address 203.0.113.1/24
"""
MODULES = ["net/llc/llc", "net/802/stp", "net/802/garp", "net/802/mrp", "net/8021q/8021q", "drivers/net/dummy"]

INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs tmp /run
for m in llc stp garp mrp 8021q dummy; do insmod /lib/$m.ko || echo "insmod $m failed"; done
ip link add d0 type dummy
ip link add d9 type dummy; ip addr add 10.9.9.9/24 dev d9
mkdir -p /data/config; cp -a /store/. /data/config/
/bloo daemon --config-dir /data/config --control-socket /run/bloo/control.sock --run-dir /run/bloo --user svc &
pid=$!
sleep 4
echo "=== START"; ip link; ip addr; echo "=== END"
cp /commit2.conf "/data/config/commits/$(cat /commit2.name)"; chown 900:900 /data/config/commits/*
kill -HUP $pid; sleep 3
echo "=== HUP"; ip link; ip addr; echo "=== END"
kill -TERM $pid; wait $pid; echo "=== EXIT $?"
poweroff -f
"""


def kernel():
    kernels = sorted(glob.glob("/boot/vmlinuz-*"))
    if not kernels or not shutil.which("qemu-system-x86_64") or not os.path.exists("/bin/busybox"):
        return None, None
    version = os.path.basename(kernels[-1])[len("vmlinuz-"):]
    modules = f"/lib/modules/{version}/kernel"
    if not all(glob.glob(f"{modules}/{m}.ko*") for m in MODULES):
        return None, None
    return kernels[-1], modules


def section(output, name):
    match = re.search(rf"=== {name}\r?\n(.*?)=== END", output, re.S)
    assert match, output[-3000:]
    return match.group(1)


def test_vlans_on_a_real_kernel(netns, daemons, accounts, bloo, tmp_path):
    vmlinuz, modules = kernel()
    if vmlinuz is None:
        pytest.skip("needs qemu, busybox-static and linux-image-amd64 with 8021q and dummy modules")
    # Two commits made by the real daemon on the host (d0 does not exist here: errors expected).
    daemon = daemons(netns("vlanprep"))
    assert daemon.commit(base_config("svc", CONFIG_1)).startswith("error failed commit 1")
    assert daemon.commit(base_config("svc", CONFIG_2)).startswith("error failed commit 2")
    assert daemon.stop() == 0
    commits = sorted(os.listdir(os.path.join(daemon.config_dir, "commits")))
    assert len(commits) == 2, commits

    root = tmp_path / "root"
    for directory in ["bin", "proc", "sys", "dev", "run", "lib", "etc", "data", "store/commits", "tmp"]:
        (root / directory).mkdir(parents=True)
    shutil.copy("/bin/busybox", root / "bin" / "busybox")
    shutil.copy(bloo, root / "bloo")
    for module in MODULES:
        source = glob.glob(f"{modules}/{module}.ko*")[0]
        target = root / "lib" / (os.path.basename(module) + ".ko")
        if source.endswith(".xz") or source.endswith(".zst"):
            pytest.skip("compressed kernel modules")
        shutil.copy(source, target)
    shutil.copy(os.path.join(daemon.config_dir, "commits", commits[0]), root / "store" / "commits" / commits[0])
    shutil.copy(os.path.join(daemon.config_dir, "commits", commits[1]), root / "commit2.conf")
    (root / "commit2.name").write_text(commits[1])
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nsvc:x:900:900::/nonexistent:/bin/false\n")
    (root / "etc" / "group").write_text("root:x:0:\nsvc:x:900:\n")
    (root / "init").write_text(INIT)
    os.chmod(root / "init", 0o755)
    archive = subprocess.run("find . | cpio -o -H newc", shell=True, cwd=root, capture_output=True, check=True).stdout
    initramfs = tmp_path / "initramfs.gz"
    initramfs.write_bytes(gzip.compress(archive, compresslevel=1))

    result = subprocess.run(["qemu-system-x86_64", "-nographic", "-no-reboot", "-m", "512", "-accel", "tcg",
                             "-kernel", vmlinuz, "-initrd", str(initramfs), "-nic", "none",
                             "-append", "console=ttyS0 quiet panic=-1"],
                            capture_output=True, text=True, timeout=240)
    output = result.stdout
    start = section(output, "START")
    assert re.search(r"d0\.100@d0: <[^>]*UP[^>]*> mtu 1400", start), start
    assert re.search(r"d0\.200@d0: <[^>]*UP[^>]*> mtu 1500", start), start
    assert "inet 198.51.100.1/24 scope global d0.100" in start
    assert "inet 192.0.2.1/24 scope global d0" in start
    # The unmanaged dummy stays down with its own address.
    assert re.search(r"d9: <BROADCAST,NOARP> ", start) and "inet 10.9.9.9/24 scope global d9" in start
    hup = section(output, "HUP")
    assert "d0.100" not in hup, hup
    assert "inet 203.0.113.1/24 scope global d0.200" in hup
    assert "inet 10.9.9.9/24 scope global d9" in hup
    assert "d0.100: VLAN removed" in output and "=== EXIT 0" in output
