"""Drives `bloo console` on a real pseudo-terminal and `bloo cli` as a process."""
import os
import signal
import subprocess
import time

import pexpect
import pexpect.fdpexpect

FACTORY_PASSWORD = "bloophone"


class Console:
    """`bloo console` on the slave side of a pty; the test types on the master side."""

    def __init__(self, bloo, data_dir, term="dumb", extra=(), rows=None, data_dir_flag=None, socket=None):
        """data_dir holds the console's log; the store is data_dir_flag or data_dir; the
        control socket is `socket` (a daemon's) or a path where no daemon listens."""
        self.data_dir = str(data_dir)
        self.master, self.slave = os.openpty()
        if rows:
            import fcntl, struct, termios
            fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, 80, 0, 0))
        self.device = os.ttyname(self.slave)
        env = {"PATH": os.environ["PATH"], "TERM": term,
               "BLOO_CONTROL_SOCKET": socket or os.path.join(self.data_dir, "no-daemon.sock")}
        self.log_path = os.path.join(self.data_dir, f"console-{time.monotonic_ns()}.log")
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [str(bloo), "console", "--data-dir", str(data_dir_flag or self.data_dir), "--confirm-unit-seconds", "1", *extra, self.device],
            env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        self.child = pexpect.fdpexpect.fdspawn(self.master, timeout=10, encoding="utf-8", codec_errors="replace")
        self.received = []
        self.child.logfile_read = _Recorder(self.received)

    def text(self):
        return "".join(self.received)

    def expect(self, pattern, timeout=10):
        self.child.expect(pattern, timeout=timeout)
        return self.child.before

    def send(self, data):
        self.child.send(data)

    def paste(self, text, chunk=256):
        """Types a large block the way a terminal pastes it: while reading what the console
        echoes (a writer that never reads would deadlock against the pty buffers)."""
        for start in range(0, len(text), chunk):
            self.send(text[start:start + chunk])
            try:
                self.child.expect("\x00never-sent", timeout=0.01)
            except pexpect.TIMEOUT:
                pass

    def login(self, user="admin", password=FACTORY_PASSWORD, hostname="bloo"):
        self.expect("login: ")
        self.send(user + "\r")
        self.expect("Password: ")
        self.send(password + "\r")
        self.expect(f"{user}@{hostname}> ")

    def run(self, line, prompt):
        """Types a line, returns what came before the next prompt (echo removed)."""
        self.send(line + "\r")
        before = self.expect(prompt)
        return before.split("\r\n", 1)[1] if "\r\n" in before else before

    def close(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass
        self.log.close()

    def kill(self):
        """A crash or a power cut of the console process: SIGKILL, no clean-up."""
        self.process.kill()
        self.process.wait()

    def log_text(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()


class _Recorder:
    def __init__(self, sink):
        self.sink = sink

    def write(self, data):
        self.sink.append(data)

    def flush(self):
        pass


def cli(bloo, data_dir, *words, check=False):
    env = {"PATH": os.environ["PATH"], "BLOO_CONTROL_SOCKET": os.path.join(str(data_dir), "no-daemon.sock")}
    return subprocess.run([str(bloo), "cli", "--data-dir", str(data_dir), *words], env=env,
                          capture_output=True, text=True, timeout=30, check=check)
