"""Shared fixtures for the system tests: the static binary, network namespaces."""
import os
import pathlib
import subprocess
import uuid

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BLOO = ROOT / "build" / "bloo"


@pytest.fixture(scope="session")
def bloo() -> pathlib.Path:
    if not BLOO.exists():
        pytest.fail(f"{BLOO} is missing: run 'make static' first")
    return BLOO


def require_root():
    if os.geteuid() != 0:
        pytest.skip("needs root (CI runs as root)")


class Namespace:
    """A network namespace that this test creates and removes."""

    def __init__(self, prefix: str):
        self.name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.run("ip", "link", "set", "lo", "up")

    def run(self, *argv, check=True, **kwargs):
        return subprocess.run(["ip", "netns", "exec", self.name, *argv], check=check,
                              capture_output=True, text=True, **kwargs)

    def popen(self, *argv, **kwargs):
        return subprocess.Popen(["ip", "netns", "exec", self.name, *argv], **kwargs)

    def delete(self):
        subprocess.run(["ip", "netns", "delete", self.name], check=False)


@pytest.fixture
def netns():
    """Factory: netns("gk") creates a namespace removed at the end of the test."""
    require_root()
    created = []

    def make(prefix="bloo"):
        ns = Namespace(prefix)
        created.append(ns)
        return ns

    yield make
    for ns in created:
        ns.delete()
