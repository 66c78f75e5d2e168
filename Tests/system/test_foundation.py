"""The multi-call binary as a user meets it: static, self-contained, strict CLI."""
import os
import pathlib
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import require_root


def run(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, **kwargs)


def test_binary_is_static(bloo):
    out = run(["file", str(bloo)]).stdout
    assert "statically linked" in out, out
    ldd = run(["ldd", str(bloo)])
    assert "not a dynamic executable" in (ldd.stdout + ldd.stderr)


def test_version_names_version_revision_and_date(bloo):
    result = run([str(bloo), "--version"])
    assert result.returncode == 0
    version = pathlib.Path(__file__).resolve().parents[2].joinpath("VERSION").read_text().strip()
    assert re.fullmatch(rf"bloo {re.escape(version)} \(revision [0-9a-f]{{12}}(-dirty)?, built \d{{4}}-\d\d-\d\d\)\n",
                        result.stdout), result.stdout


def test_version_runs_in_an_empty_chroot(bloo):
    """Only the binary, /proc and /dev: no libraries, no /etc, nothing else."""
    require_root()
    root = pathlib.Path(tempfile.mkdtemp(prefix="bloo-chroot-"))
    mounted = []
    try:
        shutil.copy2(bloo, root / "bloo")
        for directory in ("proc", "dev"):
            (root / directory).mkdir()
        subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
        mounted.append(root / "proc")
        subprocess.run(["mount", "-t", "devtmpfs", "devtmpfs", str(root / "dev")], check=False)
        if not os.path.ismount(root / "dev"):
            subprocess.run(["mount", "--bind", "/dev", str(root / "dev")], check=True)
        mounted.append(root / "dev")
        assert sorted(p.name for p in root.iterdir()) == ["bloo", "dev", "proc"]
        result = run(["chroot", str(root), "/bloo", "--version"])
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("bloo ")
    finally:
        for path in reversed(mounted):
            subprocess.run(["umount", "-l", str(path)], check=False)
        shutil.rmtree(root, ignore_errors=True)


def test_help_lists_every_command_with_a_summary(bloo):
    result = run([str(bloo), "help"])
    assert result.returncode == 0
    lines = [line for line in result.stdout.splitlines() if line.startswith("  ")]
    names = [line.split()[0] for line in lines]
    assert "help" in names and "version" in names
    assert all(len(line.split(None, 1)) == 2 for line in lines), "every command has a summary"


@pytest.mark.parametrize("argv,message", [
    (["no-such-command"], "unknown command 'no-such-command'"),
    (["--frobnicate"], "unknown option '--frobnicate'"),
    (["--log-level", "loud", "version"], "unknown log level 'loud'"),
    (["version", "extra"], "version: takes no arguments"),
])
def test_usage_errors_exit_2_with_a_clear_message(bloo, argv, message):
    result = run([str(bloo), *argv])
    assert result.returncode == 2
    assert message in result.stderr


def test_no_command_prints_usage_and_exits_2(bloo):
    result = run([str(bloo)])
    assert result.returncode == 2
    assert "usage: bloo" in result.stderr


def test_argv0_dispatch_through_a_symlink(bloo, tmp_path):
    link = tmp_path / "bloo-version"
    link.symlink_to(bloo)
    result = run([str(link)])
    assert result.returncode == 0
    assert result.stdout.startswith("bloo ")
    # A login shell gets argv[0] with a leading dash.
    result = run(["-bloo-version"], executable=str(link))
    assert result.returncode == 0 and result.stdout.startswith("bloo ")
