"""Boots the firmware image under qemu (-accel tcg) and talks to it: the serial
console through pexpect, SSH through a port forwarded on 127.0.0.1 only.

Used by test_image*.py; other suites can boot the appliance the same way.
"""
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import threading
import time

import pexpect

ROOT = pathlib.Path(__file__).resolve().parents[2]
BOARD = "qemu-x86_64"
BOARD_DIR = ROOT / "board" / BOARD


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def partitions(disk: pathlib.Path) -> dict:
    """name -> (byte offset, byte length), read from the GPT with sfdisk."""
    table = json.loads(subprocess.run(["sfdisk", "-J", str(disk)], check=True,
                                      capture_output=True, text=True).stdout)
    return {p["name"]: (p["start"] * 512, p["size"] * 512)
            for p in table["partitiontable"]["partitions"]}


def read_partition(disk: pathlib.Path, name: str) -> bytes:
    offset, length = partitions(disk)[name]
    with open(disk, "rb") as f:
        f.seek(offset)
        return f.read(length)


def put_file(disk: pathlib.Path, partition: str, source: pathlib.Path, target: str):
    """Writes a file into the ext4 data partition inside the disk image (debugfs, no mount)."""
    offset, _ = partitions(disk)[partition]
    subprocess.run(["debugfs", "-w", "-R", f"write {source} {target}", f"{disk}?offset={offset}"],
                   check=True, capture_output=True)


class Appliance:
    """One qemu boot of a disk image; survives guest reboots (qemu resets in place)."""

    def __init__(self, image_dir: pathlib.Path, disk: pathlib.Path, ssh_key: pathlib.Path,
                 log: pathlib.Path, append: str = ""):
        self.image_dir, self.disk, self.ssh_key = image_dir, disk, ssh_key
        self.ssh_port = free_port()
        self.tunnel_port = free_port()  # the appliance's TLS tunnel port 443, as `make run` forwards it
        env = dict(os.environ, BLOO_HOSTFWD=f"tcp:127.0.0.1:{self.ssh_port}-:22,tcp:127.0.0.1:{self.tunnel_port}-:443",
                   BLOO_APPEND=append)
        self.logfile = open(log, "ab")
        self.console = pexpect.spawn(str(BOARD_DIR / "qemu.sh"), [str(image_dir), str(disk)],
                                     env=env, timeout=300, logfile=self.logfile)
        # The serial console must be read all the time, as a terminal would: once qemu's pty
        # is full the guest's UART stops, and every process writing to /dev/console (the
        # daemon's log, dropbear's) blocks, with the daemon's workers in it. Between
        # expects, a thread reads into pexpect's buffer (kept for the next expect).
        self._lock = threading.Lock()
        self._closed = False
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()

    def _drain(self):
        while not self._closed:
            time.sleep(0.2)
            with self._lock:
                if self._closed or not self.console.isalive():
                    continue
                try:
                    self.console.expect([pexpect.TIMEOUT, pexpect.EOF], timeout=0.05)
                except (OSError, ValueError):
                    pass

    def expect(self, pattern, timeout=300):
        with self._lock:
            self.console.expect(pattern, timeout=timeout)
            return self.console.match

    def console_text(self, last=3000) -> str:
        """What the console printed lately (read, not consumed)."""
        with self._lock:
            try:
                self.console.expect([pexpect.TIMEOUT, pexpect.EOF], timeout=1)
            except (OSError, ValueError):
                pass
            return self.console.before.decode(errors="replace")[-last:] if isinstance(self.console.before, bytes) else ""

    def wait_booted(self, timeout=300) -> str:
        """Waits for rcS's marker line; returns the running-slot line."""
        self.expect(r"bloo: system up: ", timeout)
        match = self.expect(r"bloo: running slot ([AB]) \(([^)]*)\), ([a-z ,]+)\r*\n", 30)
        return match.group(0).decode().strip()

    def ssh(self, command: str, user: str = "root", stdin=None, input=None, timeout=180, check=False):
        argv = ["ssh", "-p", str(self.ssh_port), "-i", str(self.ssh_key),
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "-o", "ConnectTimeout=20", f"{user}@127.0.0.1", command]
        if stdin is None and input is None:
            stdin = subprocess.DEVNULL
        return subprocess.run(argv, stdin=stdin, input=input, capture_output=True, timeout=timeout, check=check)

    def ssh_popen(self, command: str, user: str = "root"):
        argv = ["ssh", "-p", str(self.ssh_port), "-i", str(self.ssh_key),
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                f"{user}@127.0.0.1", command]
        return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def cli_session(self, user: str = "admin"):
        """An interactive SSH login (a pty): the user lands in `bloo cli`."""
        argv = ["-tt", "-p", str(self.ssh_port), "-i", str(self.ssh_key),
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", f"{user}@127.0.0.1"]
        return pexpect.spawn("ssh", argv, timeout=120, env=dict(os.environ, TERM="dumb"))

    def wait_ssh(self, timeout=180):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ssh("true", timeout=30).returncode == 0:
                return
            time.sleep(1)
        raise AssertionError("SSH did not come up")

    def status(self) -> str:
        result = self.ssh("bloo update status", timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout.decode()

    def kill(self):
        """Pulls the plug: SIGKILL to qemu, no shutdown, no flush."""
        if self.console.isalive():
            os.kill(self.console.pid, signal.SIGKILL)
            self.console.wait()

    def poweroff(self, timeout=60):
        self.ssh("poweroff", timeout=30)
        self.expect(pexpect.EOF, timeout=timeout)
        self.console.wait()

    def close(self):
        self._closed = True
        self.kill()
        self._drainer.join(5)
        self.logfile.close()


def copy_disk(source: pathlib.Path, target: pathlib.Path):
    subprocess.run(["cp", "--sparse=always", str(source), str(target)], check=True)


def has_command(bloo: pathlib.Path, name: str) -> bool:
    return subprocess.run([str(bloo), name, "--help"], capture_output=True).returncode == 0
