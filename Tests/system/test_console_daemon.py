"""The console against a running `bloo daemon` (in a test namespace): the commit goes
through the control socket and is applied to real interfaces; `commit confirmed` reverts
when the daemon is killed and started again after the deadline."""
import os
import signal
import time

from bloo_daemon import accounts, base_config, daemons, wait_for  # noqa: F401  (fixtures)
from console_support import Console

PROMPT = "admin@testbox> "
EDIT = "admin@testbox# "


def addresses(ns, device):
    return ns.run("ip", "-br", "addr", "show", device).stdout


def test_console_commits_through_the_daemon_and_reverts_across_a_restart(bloo, netns, daemons, accounts):
    ns = netns("con")
    ns.run("ip", "link", "add", "k0", "type", "veth", "peer", "name", "k1")
    daemon = daemons(ns, extra_args=["--confirm-unit-seconds", "1"])
    first = base_config(accounts.service, "set interfaces k0 address 192.0.2.1/24\n")
    assert daemon.commit(first).startswith("ok\n")

    c = Console(bloo, daemon.dir, data_dir_flag=daemon.config_dir, socket=daemon.socket)
    try:
        banner = c.expect("login: ")
        assert f"management: daemon at {daemon.socket}" in banner
        c.send("admin\r")
        c.expect("Password: ")
        c.send("bloophone\r")
        c.expect(PROMPT)
        assert "192.0.2.1/24" in c.run("show configuration", PROMPT)
        c.run("configure", EDIT)
        c.run("delete interfaces k0 address 192.0.2.1/24", EDIT)
        c.run("set interfaces k0 address 192.0.2.2/24", EDIT)
        out = c.run("commit confirmed 2", EDIT)
        assert "commit complete" in out, out
        assert wait_for(lambda: "192.0.2.2/24" in addresses(ns, "k0"), timeout=5)
        # A validation failure is refused before the daemon sees it; running stays.
        c.run("set interfaces k0 vlan 5 mtu 9000", EDIT)
        assert "exceeds the MTU" in c.run("commit", EDIT)
        c.run("discard", EDIT)

        daemon.stop(sig=signal.SIGKILL)       # power cut: nobody is left to revert...
        time.sleep(3)                         # ...and the deadline passes meanwhile
        daemon.start()                        # the restarted daemon reverts on start
        assert wait_for(lambda: "192.0.2.1/24" in addresses(ns, "k0"), timeout=6)
        assert "192.0.2.2/24" not in addresses(ns, "k0")
        # The open console session announces the revert and shows the old configuration.
        c.expect(r"\*\*\* automatic rollback", timeout=8)
        c.expect(EDIT)                        # the prompt redrawn under the announcement
        assert "set interfaces k0 address 192.0.2.1/24" in c.run("show configuration running", EDIT)
        history = c.run("show configuration history", EDIT)
        assert "system" in history and "automatic rollback" in history
    finally:
        c.close()


def test_power_cut_of_the_daemon_during_a_console_commit(bloo, netns, daemons, accounts):
    """SIGKILL the daemon while it handles a large commit from the console: after the
    restart the running configuration is the old one or the new one, never a mix."""
    ns = netns("cut")
    daemon = daemons(ns)
    old = base_config(accounts.service)
    assert daemon.commit(old).startswith("ok\n")
    c = Console(bloo, daemon.dir, data_dir_flag=daemon.config_dir, socket=daemon.socket)
    try:
        c.login(hostname="testbox")
        for attempt in range(4):
            c.run("configure", EDIT)
            paste = "".join(f"set subscriber cut{attempt}u{i:03d} secret s{i}-{'y' * 48}\r" for i in range(400))
            c.paste(paste)
            c.send("show marker-after-paste\r")   # answered by the shell itself, after every pasted line
            c.expect("unknown word 'marker-after-paste'", timeout=60)
            c.expect(EDIT, timeout=60)
            c.send("commit\r")
            time.sleep(0.01 * attempt)
            daemon.stop(sig=signal.SIGKILL)
            c.expect(EDIT, timeout=30)        # the console reports the outcome, whatever it is
            daemon.start()
            reply = daemon.request("config get running\n")
            assert reply.startswith("ok\n"), reply
            running = reply[3:]
            new_count = running.count(f"set subscriber cut{attempt}u")
            assert new_count in (0, 400), f"a mix: {new_count} of 400 new subscribers"
            assert "set system hostname testbox\n" in running
            c.run("discard", EDIT)
            c.run("exit", PROMPT)
    finally:
        c.close()
