"""Certificates made at test time and a `bloo tunnel-serve` process per test."""
import pathlib
import re
import resource
import signal
import subprocess
import time

import pytest

SECRETS = {"alice": b"alice-secret-1", "bob": b"bob-secret-22"}


def make_ca(directory: pathlib.Path, name: str):
    key, cert = directory / f"{name}-ca.key", directory / f"{name}-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN=Test CA {name}"],
                   check=True, capture_output=True)
    return key, cert


def make_server_cert(directory: pathlib.Path, ca, name: str):
    ca_key, ca_cert = ca
    key, csr, cert = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.pem"
    ext = directory / f"{name}.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", csr, "-subj", "/CN=localhost"], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial",
                    "-out", cert, "-days", "2", "-extfile", ext], check=True, capture_output=True)
    return key, cert


class Server:
    def __init__(self, bloo, directory, args):
        self.stderr_path = directory / f"server-{time.monotonic_ns()}.log"
        self.stderr = open(self.stderr_path, "w")
        self.process = subprocess.Popen([str(bloo), "tunnel-serve", *args], stdout=subprocess.PIPE,
                                        stderr=self.stderr, text=True)
        line = self.process.stdout.readline()
        match = re.match(r"ready tls=(\S+) tcp=(\S+)", line)
        if not match:
            self.process.kill()
            raise AssertionError(f"terminator did not start: {line!r} {self.log()}")
        self.tls = parse_endpoint(match.group(1))
        self.tcp = parse_endpoint(match.group(2))

    def log(self):
        self.stderr.flush()
        return self.stderr_path.read_text()

    def alive(self):
        return self.process.poll() is None

    def reload(self):
        self.process.send_signal(signal.SIGHUP)

    def stop(self):
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.stderr.close()


def parse_endpoint(text):
    if text == "off":
        return None
    host, port = text.rsplit(":", 1)
    return host, int(port)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pki")
    ca = make_ca(directory, "good")
    other_ca = make_ca(directory, "other")
    key, cert = make_server_cert(directory, ca, "server")
    subscribers = directory / "subscribers"
    subscribers.write_text("# alias secret\n" + "".join(f"{a} {s.decode()}\n" for a, s in SECRETS.items())
                           + "".join(f"load{i} load-secret-{i}\n" for i in range(1200)))
    return {"dir": directory, "ca": ca[1], "ca_pair": ca, "other_ca": other_ca[1], "key": key, "cert": cert,
            "subscribers": subscribers}


@pytest.fixture
def serve(bloo, pki, tmp_path):
    started = []

    def start(*extra, tls=True, tcp=True, cert=None, key=None):
        args = ["--tls", "127.0.0.1:0" if tls else "off", "--subscribers", str(pki["subscribers"])]
        if tls:
            args += ["--cert", str(cert or pki["cert"]), "--key", str(key or pki["key"])]
        if tcp:
            args += ["--tcp", "127.0.0.1:0"]
        server = Server(bloo, tmp_path, args + list(extra))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def raise_fd_limit(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
