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
        # 8 "minutes" of 1 s: long enough that the deadline cannot pass before the kill
        # below even on a loaded machine (the revert must be the restarted daemon's).
        out = c.run("commit confirmed 8", EDIT)
        deadline = time.monotonic() + 8
        assert "commit complete" in out, out
        assert wait_for(lambda: "192.0.2.2/24" in addresses(ns, "k0"), timeout=5)
        # A validation failure is refused before the daemon sees it; running stays.
        c.run("set interfaces k0 vlan 5 mtu 9000", EDIT)
        assert "exceeds the MTU" in c.run("commit", EDIT)
        c.run("discard", EDIT)

        assert "192.0.2.2/24" in addresses(ns, "k0")   # not reverted yet
        daemon.stop(sig=signal.SIGKILL)       # power cut: nobody is left to revert...
        time.sleep(max(0.0, deadline - time.monotonic()) + 1)   # ...and the deadline passes meanwhile
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


def test_rollback_and_history_for_an_admin_who_is_not_root(bloo, netns, daemons, accounts, tmp_path):
    """An SSH admin: a member of the admin group, not root. The store belongs to the
    service user, so the history and `rollback N` come over the control socket."""
    import grp
    import pwd
    import subprocess

    import pexpect

    name = f"ssh{accounts.service[-6:]}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", "-G", accounts.admin_group, name], check=True)
    try:
        ns = netns("noroot")
        ns.run("ip", "link", "add", "k0", "type", "veth", "peer", "name", "k1")
        daemon = daemons(ns)
        from bloo_daemon import ADMIN_HASH
        user = f"set system user {name} class admin\nset system user {name} password-hash {ADMIN_HASH}\n"
        first = base_config(accounts.service, user + "set interfaces k0 address 192.0.2.1/24\n")
        second = base_config(accounts.service, user + "set interfaces k0 address 192.0.2.2/24\n")
        assert daemon.commit(first).startswith("ok\n")
        assert daemon.commit(second).startswith("ok\n")
        entry = pwd.getpwnam(name)
        identity = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups"]
        # This user cannot read the store itself.
        listing = subprocess.run(identity + ["ls", os.path.join(daemon.config_dir, "commits")], capture_output=True)
        assert listing.returncode != 0
        assert grp.getgrnam(accounts.admin_group).gr_gid in [int(g) for g in subprocess.run(
            identity + ["id", "-G"], capture_output=True, text=True, check=True).stdout.split()]

        env = {"PATH": os.environ["PATH"], "TERM": "dumb", "BLOO_CONTROL_SOCKET": daemon.socket}
        child = pexpect.spawn(identity[0], identity[1:] + [str(bloo), "cli"], env=env, encoding="utf-8",
                              codec_errors="replace", timeout=10)
        prompt, edit = f"{name}@testbox> ", f"{name}@testbox# "
        try:
            child.expect(prompt)

            def run(line, until):
                child.send(line + "\r")
                child.expect(until)
                return child.before

            history = run("show configuration history", prompt)
            assert "0  commit 2" in history and "1  commit 1" in history and "pytest" in history, history
            run("configure", edit)
            out = run("rollback 1", edit)
            assert "commit 1 loaded into the candidate" in out, out
            out = run("compare", edit)
            assert "192.0.2.1/24" in out and "192.0.2.2/24" in out, out
            out = run("commit", edit)
            assert "commit complete" in out, out
            assert wait_for(lambda: "192.0.2.1/24" in addresses(ns, "k0"), timeout=5)
            assert "192.0.2.2/24" not in addresses(ns, "k0")
            run("exit", prompt)
            history = run("show configuration history", prompt)
            assert f"0  commit 3" in history and name in history, history
            child.send("exit\r")
        finally:
            child.close(force=True)
        # The daemon recorded who did it: the login name and the uid the kernel reported.
        reply = daemon.request("config history\n")
        assert f"\t{name} (uid {entry.pw_uid})\t" in reply.split("\n")[1], reply
    finally:
        subprocess.run(["userdel", name], check=False)
