"""The control socket of a running daemon: roles from SO_PEERCRED/SO_PEERGROUPS
(admin group changes, operator group reads, others refused), malformed, oversize and
incomplete requests answered with errors while the daemon carries on, signals, health,
commit confirmed, and the crash-loop guard."""
import os
import signal
import socket
import subprocess
import time

import pytest

from bloo_daemon import accounts, base_config, daemons, exchange, kv, wait_for  # noqa: F401  (fixtures)

# Client identities: numeric uids that exist nowhere; only their groups matter.
ADMIN_UID, OPERATOR_UID, STRANGER_UID = 64001, 64002, 64003


def test_roles_are_enforced(netns, daemons, accounts):
    daemon = daemons(netns("ctl"))
    admin = dict(user=ADMIN_UID, group=ADMIN_UID, extra_groups=[accounts.admin_gid])
    admin_primary = dict(user=ADMIN_UID, group=accounts.admin_gid)
    operator = dict(user=OPERATOR_UID, group=OPERATOR_UID, extra_groups=[accounts.operator_gid])
    stranger = dict(user=STRANGER_UID, group=STRANGER_UID, extra_groups=[])

    config = base_config(accounts.service, "set tunnel tcp 127.0.0.1:8443\n")
    # Operators read, but may not change anything.
    assert daemon.request("show version\n", **operator).startswith("ok\nversion")
    assert daemon.request("config get running\n", **operator).startswith("ok\nset system hostname")
    for request in ["config commit\n\n" + config, "confirm\n", "rollback 1\n", "reboot\n"]:
        reply = daemon.request(request, **operator)
        assert reply.startswith("error denied"), (request, reply)
    # Strangers get nothing at all.
    assert daemon.request("show version\n", **stranger).startswith("error denied")
    assert "caller refused uid=64003" in daemon.log()
    # Admins (supplementary or primary group) change things.
    reply = daemon.request("config commit\nuser: alice\ncomment: from the test\n\n" + config, **admin)
    assert reply.startswith("ok\ncommit 1"), reply
    assert daemon.request("show commits\nformat: kv\n", **admin_primary).startswith("ok\ncommit.0=sequence 1 by alice (uid 64001): from the test")
    assert daemon.request("config get running\n", **operator) == "ok\n" + config
    # The commit history: operators read it; an old commit whole is for admins (rollback).
    history = daemon.request("config history\n", **operator)
    assert history.startswith("ok\n1\t") and "\talice (uid 64001)\tfrom the test\n" in history, history
    assert daemon.request("config get commit 0\n", **operator).startswith("error denied")
    assert daemon.request("config get commit 0\n", **admin) == "ok\n" + config
    assert daemon.request("config get commit 1\n", **admin).startswith("ok\nset system hostname bloo")  # factory
    assert daemon.request("config get commit 7\n", **admin).startswith("error invalid rollback 7: only 2 commits")
    assert daemon.request("config get commit 1000\n", **admin).startswith("error malformed")
    # The daemon is still alive and well.
    assert daemon.show("health")["listener.control"] == "up"


def test_malformed_oversize_and_incomplete_requests(netns, daemons, accounts):
    daemon = daemons(netns("ctl"))
    assert daemon.request(b"\x00\xff\xfe garbage\n").startswith("error malformed")
    assert daemon.request("frobnicate\n").startswith("error unknown")
    assert daemon.request("show version\nformat: xml\n").startswith("error malformed")
    assert daemon.request("config commit\nconfirm: 99999999999\n\nx").startswith("error malformed")
    assert daemon.request("config commit\n\nset this is not a config\n").startswith("error invalid line 1:")
    assert daemon.request("show nosuchtopic\n").startswith("error unknown no topic 'nosuchtopic'")
    # Oversize: refused before parsing; the reply arrives even though the daemon stopped reading.
    reply = daemon.request(b"config commit\n\n" + b"x" * (2 * 1024 * 1024))
    assert reply.startswith("error too-large"), reply[:100]
    # Incomplete (never half-closed): a timeout reply, not a stuck daemon.
    start = time.time()
    reply = daemon.request("show version\n", half_close=False)
    assert reply.startswith("error timeout") and time.time() - start < 10
    # Idle connections beyond the 16 served at once wait in the backlog; each idle one is
    # closed after its 5 s deadline, so a well-behaved client is served within a bound.
    idle = []
    start = time.time()
    for _ in range(20):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(daemon.socket)
        idle.append(s)
    assert daemon.request("show version\n").startswith("ok\nversion")
    assert time.time() - start < 8
    for s in idle:
        s.close()
    assert daemon.process.poll() is None
    assert daemon.show("health")["listener.control"] == "up"


def test_signals_health_and_stop(netns, daemons, accounts):
    daemon = daemons(netns("ctl"))
    health = daemon.show("health")
    # The factory default names eth0, which this namespace lacks: not healthy, and says why.
    assert health["healthy"] == "no" and "eth0: no such interface" in health["config.error.0"]
    assert daemon.commit(base_config(accounts.service, "set tunnel tcp 127.0.0.1:8443\n")).startswith("ok\n")
    health = daemon.show("health")
    assert health["healthy"] == "yes", health
    assert health["workers"] == "alive" and health["gatekeeper"] == "not-configured"
    # A configured gatekeeper that no service checks yet is reported, not assumed.
    config = base_config(accounts.service, "set tunnel tcp 127.0.0.1:8443\nset gatekeeper address 127.0.0.1:1719\n")
    assert daemon.commit(config).startswith("ok\n")
    health = daemon.show("health")
    assert health["healthy"] == "no" and health["gatekeeper"].startswith("unknown")

    daemon.process.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "reason=SIGHUP" in daemon.log())
    assert daemon.process.poll() is None
    start = time.time()
    assert daemon.stop(signal.SIGTERM) == 0
    assert time.time() - start < 7
    assert not os.path.exists(daemon.socket)
    assert "daemon stopped" in daemon.log()


def test_commit_confirmed_reverts_without_confirm(netns, daemons, accounts):
    ns = netns("ctl")
    ns.run("ip", "link", "add", "c0", "type", "veth", "peer", "name", "c1")
    # One "minute" of commit confirmed lasts one second in this test.
    daemon = daemons(ns, extra_args=["--confirm-unit-seconds", "1"])
    first = base_config(accounts.service, "set interfaces c0 address 192.0.2.1/24\n")
    second = base_config(accounts.service, "set interfaces c0 address 192.0.2.2/24\n")
    assert daemon.commit(first).startswith("ok\n")
    assert daemon.request("config commit\nconfirm: 2\n\n" + second).startswith("ok\ncommit 2, confirm within 2 min")
    assert daemon.request("config get candidate\n") == "ok\n" + second
    assert "192.0.2.2/24" in ns.run("ip", "-br", "addr", "show", "c0").stdout
    assert wait_for(lambda: "192.0.2.1/24" in ns.run("ip", "-br", "addr", "show", "c0").stdout, timeout=6)
    assert daemon.request("config get running\n") == "ok\n" + first
    # Confirmed in time: it stays.
    assert daemon.request("config commit\nconfirm: 2\n\n" + second).startswith("ok\n")
    assert daemon.request("confirm\n") == "ok\nconfirmed\n"
    time.sleep(3)
    assert "192.0.2.2/24" in ns.run("ip", "-br", "addr", "show", "c0").stdout
    assert daemon.request("confirm\n").startswith("error unavailable")
    # History, newest first: 4 (second, confirmed), 3 (automatic revert to first), 2, 1.
    # rollback 1 restores commit 3, the first configuration, as a new commit.
    assert daemon.request("rollback 1\n").startswith("ok\nrollback 1 as commit 5")
    assert "192.0.2.1/24" in ns.run("ip", "-br", "addr", "show", "c0").stdout


def test_reboot_request_exits_with_the_reboot_status(netns, daemons, accounts):
    daemon = daemons(netns("ctl"))
    assert daemon.request("reboot\n") == "ok\nrebooting\n"
    assert daemon.process.wait(timeout=10) == 10


def test_crash_loop_holds_off_and_says_so(netns, daemons, accounts):
    daemon = daemons(netns("ctl"), wait=False)
    daemon.stop(signal.SIGKILL)
    # Three unclean starts within the last minutes, as a supervisor restarting a dying daemon leaves them.
    os.makedirs(daemon.run_dir, exist_ok=True)
    now = int(time.time())
    with open(os.path.join(daemon.run_dir, "daemon-starts"), "w") as handle:
        handle.write(f"{now - 30}\n{now - 20}\n{now - 10}\n")
    daemon.start(wait=False)
    assert wait_for(lambda: "crash loop" in daemon.log(), timeout=5), daemon.log()
    assert "unclean starts in the last 10 minutes; waiting" in daemon.log()
    assert daemon.process.poll() is None and not os.path.exists(daemon.socket)
    # SIGTERM during the hold-off stops it at once.
    assert daemon.stop(signal.SIGTERM, timeout=5) == 0
