"""802.1Q VLANs and dummy interfaces on a real Debian kernel under qemu, for hosts whose
kernel lacks the 8021q and dummy drivers (containers, CI). One boot serves both tests:

- VLANs: the daemon creates VLAN sub-interfaces with MTU and addresses, and removes a VLAN
  that a reloaded configuration (SIGHUP) drops;
- dummies: e0 configured (MTU, IPv4 and IPv6 addresses, up), then reconfigured by the
  reload (address replaced, IPv6 dropped, disabled); someone else removing an address and
  taking e0 down is seen as events and repaired; a new interface n0 is reported and left
  alone; the unmanaged dummy d9 is never touched;
- the daemon stops with status 0.

The configuration store comes from a daemon run on the host."""
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
set interfaces e0 mtu 1280
set interfaces e0 address 192.0.2.9/24
set interfaces e0 address 2001:db8:9::9/64
"""
CONFIG_2 = """set interfaces d0 address 192.0.2.1/24
set interfaces d0 vlan 200 address 203.0.113.1/24
set interfaces e0 address 192.0.2.10/24
set interfaces e0 disable
"""
MODULES = ["net/llc/llc", "net/802/stp", "net/802/garp", "net/802/mrp", "net/8021q/8021q", "drivers/net/dummy"]

INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs tmp /run
for m in llc stp garp mrp 8021q dummy; do insmod /lib/$m.ko || echo "insmod $m failed"; done
ip link set lo up
ip link add d0 type dummy; ip link add e0 type dummy
ip link add d9 type dummy; ip addr add 10.9.9.9/24 dev d9
mkdir -p /data/config; cp -a /store/. /data/config/
/bloo daemon --config-dir /data/config --control-socket /run/bloo/control.sock --run-dir /run/bloo --user svc 2>/run/daemon.log &
pid=$!
i=0; while [ $i -lt 100 ] && ! grep -q "daemon running" /run/daemon.log; do sleep 0.1; i=$((i+1)); done
sleep 1
echo "=== START"; ip link; ip addr; echo "=== END"
# Someone else: removes a managed address, takes e0 down (which also drops its IPv6
# address), adds an interface of their own.
ip addr del 192.0.2.9/24 dev e0; sleep 0.5; ip link set e0 down; ip link add n0 type dummy
sleep 2
echo "=== REPAIRED"; ip link; ip addr; echo "=== END"
echo "=== EVENTS"; BLOO_CONTROL_SOCKET=/run/bloo/control.sock /bloo cli --data-dir /data/config show log; echo "=== END"
cp /commit2.conf "/data/config/commits/$(cat /commit2.name)"; chown 900:900 /data/config/commits/*
kill -HUP $pid; sleep 2
echo "=== HUP"; ip link; ip addr; echo "=== END"
kill -TERM $pid; wait $pid; echo "=== EXIT $?"
echo "=== LOG"; cat /run/daemon.log; echo "=== END"
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


_boots = {}


def boot(netns, daemons, bloo, tmp_path):
    """Boots the guest once for the module; returns its console output."""
    if "output" in _boots:
        return _boots["output"]
    vmlinuz, modules = kernel()
    if vmlinuz is None:
        pytest.fail("needs qemu-system-x86, busybox-static and linux-image-amd64 with the 8021q and dummy "
                    "modules (scripts/deps.sh installs them)")
    # Two commits made by the real daemon on the host (d0 and e0 do not exist here: errors expected).
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
            pytest.fail(f"compressed kernel module {source}: this test loads .ko files with busybox insmod")
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
    _boots["output"] = result.stdout
    return result.stdout


def interface(block, name):
    """The lines of one interface in busybox `ip link; ip addr` output (both listings)."""
    return "".join(re.findall(rf"^\d+: {re.escape(name)}[:@].*?(?=^\d+: |\Z)", block, re.S | re.M))


def test_vlans_on_a_real_kernel(netns, daemons, accounts, bloo, tmp_path):
    output = boot(netns, daemons, bloo, tmp_path)
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


def test_dummy_interfaces_on_a_real_kernel(netns, daemons, accounts, bloo, tmp_path):
    output = boot(netns, daemons, bloo, tmp_path)
    # Configured: MTU, up, both addresses.
    e0 = interface(section(output, "START"), "e0")
    assert re.search(r"<[^>]*\bUP\b[^>]*> mtu 1280", e0), e0
    assert "inet 192.0.2.9/24 scope global e0" in e0 and "inet6 2001:db8:9::9/64 scope global" in e0, e0
    # Someone else's changes: seen as events, and what the configuration owns is put back.
    repaired = section(output, "REPAIRED")
    e0 = interface(repaired, "e0")
    assert re.search(r"<[^>]*\bUP\b[^>]*> mtu 1280", e0), e0
    assert "inet 192.0.2.9/24 scope global e0" in e0 and "inet6 2001:db8:9::9/64 scope global" in e0, e0
    n0 = interface(repaired, "n0")
    assert n0 and not re.search(r"<[^>]*\bUP\b", n0), n0   # a new interface: reported, not touched
    events = section(output, "EVENTS")
    for event in ["address-removed e0 192.0.2.9/24", "admin-down e0", "admin-up e0", "interface-added n0"]:
        assert event in events, events
    # Reconfigured by the reload: the address replaced, the IPv6 address gone, disabled.
    e0 = interface(section(output, "HUP"), "e0")
    assert not re.search(r"<[^>]*\bUP\b", e0), e0
    assert "inet 192.0.2.10/24 scope global e0" in e0 and "192.0.2.9/24" not in e0 and "2001:db8:9::9" not in e0, e0
    # Left alone throughout: the unmanaged dummy and the newcomer.
    for name in ["START", "REPAIRED", "HUP"]:
        d9 = interface(section(output, name), "d9")
        assert re.search(r"d9: <BROADCAST,NOARP> ", d9) and "inet 10.9.9.9/24 scope global d9" in d9, d9
    assert not re.search(r"<[^>]*\bUP\b", interface(section(output, "HUP"), "n0"))
    log = section(output, "LOG")
    assert "network event event=interface-added interface=n0" in log, log
    assert "=== EXIT 0" in output
