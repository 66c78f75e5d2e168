"""The firmware image under qemu: boot, SSH, and updates with A/B slots, signed bundles
and automatic rollback (issue: firmware image). One image is built per session
(board/qemu-x86_64/build-image.sh, signed with a key this session generates); each
test boots its own copy of the disk.

The documented update runs as admin through the CLI (`ssh admin@box update install <
bundle`); the other update tests drive `bloo update ...` as root, whose key exists only
where a test puts one into the data partition. The documented test call (README) runs
from the host against the booted image's lab gatekeeper and gateway.
"""
import hashlib
import os
import pathlib
import re
import shlex
import subprocess
import time

import pexpect
import pytest

from appliance import (Appliance, BOARD, BOARD_DIR, ROOT, copy_disk, put_file,
                       read_partition)

TRIAL_DEADLINE = 60  # seconds; the board default (180) shortened on the kernel command line


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="session")
def firmware(bloo, tmp_path_factory):
    """Builds the image once: kernel, initramfs, disk, bundles for the tests."""
    if not os.access("/dev/kvm", os.F_OK) and subprocess.run(["which", "qemu-system-x86_64"],
                                                              capture_output=True).returncode != 0:
        pytest.skip("qemu-system-x86_64 is missing (make deps)")
    work = tmp_path_factory.mktemp("firmware")
    subprocess.run([str(bloo), "bundle", "keygen", "--output", str(work / "signing")], check=True,
                   capture_output=True)
    image = work / "image"
    started = time.monotonic()
    subprocess.run([str(BOARD_DIR / "build-image.sh")], check=True, capture_output=True,
                   env=dict(os.environ, BLOO=str(bloo), BLOO_IMAGE_DIR=str(image),
                            BLOO_SIGNING_KEY=str(work / "signing.key")))
    built = time.monotonic() - started
    version = (ROOT / "VERSION").read_text().strip()
    ssh_key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh_key)], check=True)

    def bundle(name, version, rootfs=image / "rootfs.squashfs", key=work / "signing.key", board=BOARD):
        path = work / f"{name}.bundle"
        subprocess.run([str(bloo), "bundle", "create", "--key", str(key), "--rootfs", str(rootfs),
                        "--version", version, "--board", board, "--output", str(path)],
                       check=True, capture_output=True)
        return path

    # A root filesystem whose daemon never reports healthy: its inittab runs a
    # process that sleeps in the daemon's place.
    unhealthy_dir = work / "unhealthy"
    subprocess.run(["unsquashfs", "-q", "-n", "-d", str(unhealthy_dir), str(image / "rootfs.squashfs")],
                   check=True, capture_output=True)
    inittab = unhealthy_dir / "etc" / "inittab"
    text = inittab.read_text()
    assert "/usr/bin/bloo daemon" in text
    inittab.write_text(text.replace("/usr/bin/bloo daemon", "/bin/sleep 86400"))
    unhealthy_rootfs = work / "unhealthy.squashfs"
    subprocess.run(["mksquashfs", str(unhealthy_dir), str(unhealthy_rootfs), "-all-root", "-comp", "xz",
                    "-noappend", "-quiet"], check=True, capture_output=True)
    subprocess.run([str(bloo), "bundle", "keygen", "--output", str(work / "stranger")], check=True,
                   capture_output=True)

    return {
        "work": work, "image": image, "version": version, "ssh_key": ssh_key, "built": built,
        "next": bundle("next", "0.2.0"),
        "unhealthy": bundle("unhealthy", "0.3.0", rootfs=unhealthy_rootfs),
        "older": bundle("older", "0.0.9"),
        "stranger": bundle("stranger", "0.2.0", key=work / "stranger.key"),
        "other_board": bundle("other-board", "0.2.0", board="rack-1u"),
        "bloo": bloo,
    }


@pytest.fixture
def box(firmware, tmp_path, request):
    """Factory: boots a private copy of the disk with the test's SSH key for root and admin."""
    disk = tmp_path / "disk.img"
    copy_disk(firmware["image"] / "disk.img", disk)
    for home in ["/root", "/home/admin"]:
        put_file(disk, "data", pathlib.Path(str(firmware["ssh_key"]) + ".pub"), f"{home}/.ssh/authorized_keys")
    started = []

    def boot():
        appliance = Appliance(firmware["image"], disk, firmware["ssh_key"], tmp_path / "console.log",
                              append=f"bloo.trial_deadline={TRIAL_DEADLINE}")
        started.append(appliance)
        return appliance

    boot.disk = disk
    yield boot
    for appliance in started:
        appliance.close()
    log = tmp_path / "console.log"
    if log.exists():
        print(f"console log: {log}")


def test_boots_from_slot_a_to_the_appliance(box, firmware):
    started = time.monotonic()
    appliance = box()
    appliance.expect(r"bloo init: booting slot A \(" + re.escape(firmware["version"]) + r"\)")
    running = appliance.wait_booted()
    boot_seconds = time.monotonic() - started
    assert running == f"bloo: running slot A ({firmware['version']}), confirmed"
    print(f"boot to 'system up': {boot_seconds:.1f} s")
    appliance.wait_ssh()
    result = appliance.ssh("bloo version")
    assert result.returncode == 0 and result.stdout.decode().startswith(f"bloo {firmware['version']} ")
    # The root filesystem is the read-only slot; /data and /run are where writes go.
    mounts = appliance.ssh("cat /proc/mounts").stdout.decode()
    assert re.search(r"^/dev/root / squashfs ro|^/dev/vda2 / squashfs ro", mounts, re.M), mounts
    assert re.search(r"^/dev/vda4 /data ext4 rw", mounts, re.M), mounts
    assert re.search(r"^tmpfs /run tmpfs", mounts, re.M), mounts
    assert appliance.ssh("touch /usr/bin/x").returncode != 0
    # The data partition is laid out and the default configuration is in place.
    assert appliance.ssh("test -f /data/config/bloo.conf && test -f /data/ssh/dropbear_ed25519_host_key").returncode == 0


def admin_status(appliance) -> str:
    """`show update` as admin: the CLI's hook runs the update status verb."""
    result = appliance.ssh("show update", user="admin", timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.decode()


def admin_reboot(appliance):
    """`reboot` in admin's interactive CLI (it asks for confirmation)."""
    session = appliance.cli_session("admin")
    try:
        session.expect(r"admin@bloo> ")
        session.send("reboot\r")
        session.expect(r"Type 'yes' to proceed: ")
        session.send("yes\r")
        session.expect(pexpect.EOF, timeout=60)  # the box goes down under the session
    finally:
        session.close(force=True)


def test_admin_installs_over_ssh_through_the_cli_then_reboots_into_slot_b_confirmed(box, firmware):
    """The documented update: `ssh admin@box update install < bundle`. admin is no root: its
    login shell is `bloo cli`, whose update hook writes slot B and the boot state as a member
    of group `update` (docs/update.md)."""
    appliance = box()
    appliance.wait_booted()
    appliance.wait_ssh()
    assert appliance.ssh("id -u", user="admin").returncode != 0  # a CLI, not a shell
    started = time.monotonic()
    with open(firmware["next"], "rb") as bundle:
        result = subprocess.run(["ssh", "-p", str(appliance.ssh_port), "-i", str(firmware["ssh_key"]),
                                 "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                                 "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                                 "admin@127.0.0.1", "update install"], stdin=bundle, capture_output=True, timeout=300)
    install_seconds = time.monotonic() - started
    out, err = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 0, err
    # Progress as it happens, then the verdict.
    assert "signature good" in err and "install: 40%" in err and "install: 100%" in err, err
    assert "installed 0.2.0" in out
    status = admin_status(appliance)
    assert "running:  slot A" in status and "slot B:   0.2.0 (trial, 1 boots left)" in status
    print(f"install of {firmware['next'].stat().st_size} bytes over SSH as admin: {install_seconds:.1f} s")

    admin_reboot(appliance)
    appliance.expect(r"bloo init: booting slot B \(0\.2\.0\) on trial")
    assert appliance.wait_booted() == "bloo: running slot B (0.2.0), on trial, not confirmed yet"
    # The daemon reports healthy (its lab gatekeeper answers the probe) and the watchdog confirms.
    appliance.expect(r"update watchdog: slot B \(0\.2\.0\) confirmed", TRIAL_DEADLINE + 60)
    appliance.wait_ssh()
    status = admin_status(appliance)
    assert "running:  slot B (0.2.0), confirmed" in status
    assert "slot B:   0.2.0 (last good)" in status and "floor:    0.2.0" in status

    # Confirmed means it stays: the next boot (past the trial deadline) is still B.
    admin_reboot(appliance)
    appliance.expect(r"bloo init: booting slot B \(0\.2\.0\)\r*\n")
    assert appliance.wait_booted() == "bloo: running slot B (0.2.0), confirmed"


def test_unhealthy_bundle_rolls_back_by_itself(box, firmware):
    appliance = box()
    appliance.wait_booted()
    appliance.wait_ssh()
    result = install(appliance, firmware["unhealthy"])
    assert result.returncode == 0, result.stderr
    appliance.ssh("reboot", timeout=30)
    appliance.expect(r"bloo init: booting slot B \(0\.3\.0\) on trial")
    appliance.expect(r"update watchdog: slot B \(0\.3\.0\) failed its trial: the daemon did not report healthy "
                     rf"within {TRIAL_DEADLINE} s", TRIAL_DEADLINE + 120)
    # No one touches the box: it reboots and init goes back to A.
    appliance.expect(r"bloo init: rolled back to slot A \(0\.1\.0\): slot B \(0\.3\.0\) failed its trial", 300)
    appliance.expect(r"bloo init: booting slot A \(0\.1\.0\)\r*\n")
    assert appliance.wait_booted() == "bloo: running slot A (0.1.0), confirmed"
    appliance.wait_ssh()
    status = appliance.status()
    assert "rolled back to slot A (0.1.0)" in status and "did not report healthy" in status
    assert "floor:    0.1.0" in status


def test_qemu_killed_during_the_write_boots_the_old_slot(box, firmware):
    appliance = box()
    appliance.wait_booted()
    appliance.wait_ssh()
    bundle = firmware["next"].read_bytes()
    writer = appliance.ssh_popen("bloo update install")
    # Send the header and part of the payload, wait until the slot is being written, then
    # pull the plug while the rest is still on its way.
    writer.stdin.write(bundle[: len(bundle) // 2])
    writer.stdin.flush()
    deadline = time.monotonic() + 60
    seen = b""
    while b"install: 40%" not in seen and time.monotonic() < deadline:
        line = writer.stderr.readline()
        if not line:
            break
        seen += line
    assert b"install: 40%" in seen, seen
    appliance.kill()
    writer.kill()
    writer.wait()

    again = box()
    again.expect(r"bloo init: booting slot A \(0\.1\.0\)\r*\n")
    assert again.wait_booted() == "bloo: running slot A (0.1.0), confirmed"
    again.wait_ssh()
    status = again.status()
    assert "slot A:   0.1.0 (last good)" in status and "slot B:   empty" in status and "trial" not in status


@pytest.fixture(scope="module")
def idle_box(firmware, tmp_path_factory):
    """One booted appliance shared by the tests that change nothing on it: console and SSH
    logins, the refusals (each checks that nothing changed), the documented test call."""
    work = tmp_path_factory.mktemp("idle")
    disk = work / "disk.img"
    copy_disk(firmware["image"] / "disk.img", disk)
    for home in ["/root", "/home/admin"]:
        put_file(disk, "data", pathlib.Path(str(firmware["ssh_key"]) + ".pub"), f"{home}/.ssh/authorized_keys")
    appliance = Appliance(firmware["image"], disk, firmware["ssh_key"], work / "console.log")
    appliance.wait_booted()
    appliance.wait_ssh()
    yield appliance
    appliance.close()


def test_console_login_and_show_version(idle_box, firmware):
    appliance = idle_box
    appliance.console.send("\r")  # an empty name asks again: a fresh prompt whatever came before
    appliance.expect(r"login: ", 300)
    # The factory default's administrator (Sources/Config/FactoryDefault.swift).
    appliance.console.send("admin\r")
    appliance.expect(r"Password: ", 60)
    appliance.console.send("bloophone\r")
    appliance.expect(r"admin@bloo> ", 120)
    appliance.console.send("show version\r")
    appliance.expect(r"bloo " + re.escape(firmware["version"]) + r" ", 60)
    appliance.expect(r"admin@bloo> ", 60)
    appliance.console.send("logout\r")
    appliance.expect(r"login: ", 60)


def test_ssh_admin_lands_in_the_cli(idle_box, firmware):
    appliance = idle_box
    result = appliance.ssh("show version", user="admin")
    assert result.returncode == 0, result.stderr
    assert firmware["version"] in result.stdout.decode()
    # Not a Unix shell: a shell command is not a CLI command.
    assert appliance.ssh("ls /", user="admin").returncode != 0


def install(appliance, bundle: pathlib.Path, user="root"):
    command = "bloo update install" if user == "root" else "update install"
    with open(bundle, "rb") as f:
        return appliance.ssh(command, user=user, stdin=f, timeout=300)


def slot_b_digest(appliance) -> str:
    result = appliance.ssh("sha256sum /dev/vda3", timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.decode().split()[0]


def refused(appliance, data: bytes, message: str):
    before_status, before_slot = appliance.status(), slot_b_digest(appliance)
    result = appliance.ssh("bloo update install", input=data, timeout=120)
    err = result.stderr.decode()
    assert result.returncode == 1, err
    assert message in err, err
    return before_status, before_slot, err


@pytest.mark.parametrize("case, message", [
    ("bad_signature", "refused: bad signature"),
    ("unknown_key", "refused: signed with unknown key"),
    ("other_board", "refused: bundle is for board rack-1u, this appliance is qemu-x86_64"),
    ("downgrade", "refused: version 0.0.9 is below the anti-downgrade floor 0.1.0"),
])
def test_refused_bundles_write_nothing(idle_box, firmware, case, message):
    data = {
        "unknown_key": lambda: firmware["stranger"].read_bytes(),
        "other_board": lambda: firmware["other_board"].read_bytes(),
        "downgrade": lambda: firmware["older"].read_bytes(),
    }.get(case, lambda: None)()
    if case == "bad_signature":
        data = bytearray(firmware["next"].read_bytes())
        length = int.from_bytes(data[8:12], "big")
        data[12 + length + 10] ^= 0x01  # a bit of the signature
        data = bytes(data)
    before_status, before_slot, err = refused(idle_box, data, message)
    assert "install: writing" not in err
    assert idle_box.status() == before_status
    assert slot_b_digest(idle_box) == before_slot


def test_truncated_bundle_leaves_the_boot_choice(idle_box, firmware):
    data = firmware["next"].read_bytes()
    before_status, _, err = refused(idle_box, data[: len(data) * 2 // 3], "refused: bundle truncated: image rootfs got")
    after = idle_box.status()
    # Same running slot, same good slot, no trial: the next boot is what it was.
    for line in ("running:  slot A (0.1.0), confirmed", "slot A:   0.1.0 (last good)", "slot B:   empty"):
        assert line in before_status and line in after
    assert "trial" not in after


def documented_test_call() -> list:
    """README's test call against `make run` (the `build/bloo phone call` line that trusts
    the image's tunnel CA), as words."""
    lines = [line for line in (ROOT / "README.md").read_text().splitlines()
             if line.startswith("build/bloo phone call ") and "build/image/tunnel-ca.pem" in line]
    assert len(lines) == 1, lines
    return shlex.split(lines[0])


def test_the_documented_test_call_reaches_the_lab_gateway_with_audio_both_ways(idle_box, firmware):
    """README's test call, from the host, against the booted image: TLS to the forwarded
    tunnel port (trusting the image's tunnel-ca.pem), the mirror, the lab gatekeeper and
    the lab gateway of the board's default configuration. Only what differs from `make
    run` is replaced: this session's binary, image directory and forwarded port."""
    argv = documented_test_call()
    replacements = {"build/bloo": str(firmware["bloo"]),
                    "build/image/tunnel-ca.pem": str(firmware["image"] / "tunnel-ca.pem"),
                    "tls:127.0.0.1:4443": f"tls:127.0.0.1:{idle_box.tunnel_port}"}
    assert set(replacements) <= set(argv), argv
    argv = [replacements.get(word, word) for word in argv]
    # Ready as a newcomer finds it: a `bloo phone scan` (the same appliance and CA) reaches
    # the tunnel within the phone's 2 s budget. The daemon starts its lab tools before its
    # tunnel listener, so the lab gatekeeper and gateway are up by then.
    deadline = time.monotonic() + 90
    scan = [argv[0], "phone", "scan"] + argv[4:]  # the call's own options
    scans = []
    while time.monotonic() < deadline:
        scans.append(subprocess.run(scan, capture_output=True, text=True, timeout=60))
        if scans[-1].returncode == 0:
            break
        time.sleep(1)
    started = time.monotonic()
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired as timeout:
        result = subprocess.CompletedProcess(argv, -1, (timeout.stdout or b"").decode(errors="replace"),
                                             "timed out after 120 s")
    out = result.stdout
    if result.returncode != 0:
        console = idle_box.console_text()
        scan_lines = [s.stdout[-300:] for s in scans]
        raise AssertionError(f"{out}{result.stderr}\nscans ({len(scans)}): {scan_lines}\nconsole:\n{console}")
    print(f"test call: {time.monotonic() - started:.1f} s\n{out}")
    assert re.search(r"connected \(call 1\), codec PCM[AU]", out), out
    heard = int(re.search(r"tone 2000 Hz: present in (\d+)%", out).group(1))
    assert heard >= 80, out  # the lab gateway's tone reached the phone
    assert re.search(r"tunnel open to \S+ \(tunnel over TCP, TLS\), authenticated as demo", out), out
    assert "summary: path tunnel over TCP" in out and "summary: estimated MOS" in out, out
    # The other direction: the lab gateway (inside the appliance) heard the phone's 1000 Hz.
    released = idle_box.expect(rb"lab-gateway: call released ([^\r\n]*)\r?\n", 60).group(1).decode()  # the whole line
    fields = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', released))
    assert float(fields["tone_presence"]) >= 0.8, released
