"""Runs `bloo daemon` inside a test namespace and talks to its control socket.

Used by test_netlink.py, test_privileges.py and test_control_socket.py. Accounts and
groups are created with useradd/groupadd and removed afterwards; clients run as other
uids/gids through subprocess's user/group/extra_groups (real kernel credentials, which
the daemon reads with SO_PEERCRED/SO_PEERGROUPS)."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

ADMIN_HASH = ("pbkdf2-sha256$200000$6f1c2b9e4a7d3f5008c1e2d3b4a59687$"
              "1d71c3c61b0548c189bdaa229c159aef8fd89422fd54c49f41e72bda6213d5db")


def base_config(service_user, extra=""):
    return (f"set system hostname testbox\n"
            f"set system user admin class admin\n"
            f"set system user admin password-hash {ADMIN_HASH}\n"
            f"set system service-user {service_user}\n" + extra)


class Accounts:
    """A service user and the admin/operator groups, created for one test."""

    def __init__(self):
        tag = uuid.uuid4().hex[:6]
        self.service = f"bloosvc{tag}"
        self.admin_group = f"blooadm{tag}"
        self.operator_group = f"bloopr{tag}"
        subprocess.run(["groupadd", self.admin_group], check=True)
        subprocess.run(["groupadd", self.operator_group], check=True)
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        self.service], check=True)
        import grp
        import pwd
        self.service_uid = pwd.getpwnam(self.service).pw_uid
        self.service_gid = pwd.getpwnam(self.service).pw_gid
        self.admin_gid = grp.getgrnam(self.admin_group).gr_gid
        self.operator_gid = grp.getgrnam(self.operator_group).gr_gid

    def remove(self):
        subprocess.run(["userdel", self.service], check=False)
        subprocess.run(["groupdel", self.admin_group], check=False)
        subprocess.run(["groupdel", self.operator_group], check=False)


def exchange(path, data: bytes, user=None, group=None, extra_groups=None, half_close=True, timeout=15):
    """One request; returns the reply text. With user/group, runs as that identity in a child."""
    if user is None and group is None:
        return _exchange_here(path, data, half_close, timeout)
    # A forked child takes the identity (groups, gid, uid: real kernel credentials).
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.setgroups(extra_groups or [])
            os.setgid(group)
            os.setuid(user)
            reply = _exchange_here(path, data, half_close, timeout).encode()
            os.write(write_end, b"R" + reply)
        except BaseException as error:  # reported to the parent, never raised in the child
            os.write(write_end, b"E" + repr(error).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    chunks = []
    while True:
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    result = b"".join(chunks)
    assert result.startswith(b"R"), result.decode(errors="replace")
    return result[1:].decode()


def _exchange_here(path, data, half_close, timeout):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    try:
        s.sendall(data)
    except OSError:
        pass
    if half_close:
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    return out.decode()


def kv(reply):
    """Parses an `ok` reply in kv format into a dict."""
    assert reply.startswith("ok\n"), reply
    pairs = {}
    for line in reply[3:].splitlines():
        key, _, value = line.partition("=")
        pairs[key] = value
    return pairs


class Daemon:
    def __init__(self, bloo, ns, accounts, extra_args=()):
        self.bloo = bloo
        self.ns = ns
        self.accounts = accounts
        # A world-traversable directory: clients of other uids must reach the socket.
        self.dir = tempfile.mkdtemp(prefix="bloo-daemon-")
        os.chmod(self.dir, 0o755)
        self.config_dir = os.path.join(self.dir, "config")
        self.run_dir = os.path.join(self.dir, "run")
        self.socket = os.path.join(self.run_dir, "control.sock")
        self.log_path = os.path.join(self.dir, "daemon.log")
        self.extra_args = list(extra_args)
        self.process = None

    def start(self, wait=True):
        self.log_file = open(self.log_path, "wb")
        self.process = self.ns.popen(
            str(self.bloo), "daemon", "--config-dir", self.config_dir, "--control-socket", self.socket,
            "--run-dir", self.run_dir, "--user", self.accounts.service,
            "--admin-group", self.accounts.admin_group, "--operator-group", self.accounts.operator_group,
            *self.extra_args, stdout=self.log_file, stderr=subprocess.STDOUT)
        if wait:
            self.wait_running()
        return self

    def wait_running(self, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if "daemon running" in self.log():
                return
            assert self.process.poll() is None, f"daemon exited {self.process.returncode}:\n{self.log()}"
            time.sleep(0.05)
        raise AssertionError("daemon did not start:\n" + self.log())

    @property
    def pid(self):
        # `ip netns exec` execs the command: the child's pid is the daemon's.
        return self.process.pid

    def log(self):
        with open(self.log_path, "rb") as handle:
            return handle.read().decode(errors="replace")

    def request(self, text, **kwargs):
        data = text.encode() if isinstance(text, str) else text
        return exchange(self.socket, data, **kwargs)

    def commit(self, config, **kwargs):
        return self.request("config commit\nuser: pytest\n\n" + config, **kwargs)

    def show(self, topic, **kwargs):
        return kv(self.request(f"show {topic}\nformat: kv\n", **kwargs))

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()

    def cleanup(self):
        self.stop()
        if getattr(self, "log_file", None):
            self.log_file.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_for(predicate, timeout=5.0, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


import pytest  # noqa: E402  (fixtures below are imported by the test modules)


@pytest.fixture
def accounts():
    if os.geteuid() != 0:
        pytest.skip("needs root (CI runs as root)")
    created = Accounts()
    yield created
    created.remove()


@pytest.fixture
def daemons(bloo, accounts):
    """Factory: daemons(ns, extra_args) starts `bloo daemon` in ns; stopped at the end."""
    started = []

    def make(ns, extra_args=(), wait=True):
        daemon = Daemon(bloo, ns, accounts, extra_args)
        started.append(daemon)
        return daemon.start(wait=wait)

    yield make
    for daemon in started:
        daemon.cleanup()
