"""Least privilege of a running daemon, read from /proc/<pid>/status and
/proc/<pid>/task/*/status: every thread runs as the service user with no groups, only
the capabilities the configuration needs (also in the bounding set), nothing ambient or
inheritable, no_new_privs set; and the threads sit on the configured CPUs."""
import glob
import os
import re
import subprocess

import pytest

from bloo_daemon import accounts, base_config, daemons, kv, wait_for  # noqa: F401  (fixtures)

CAP_NET_BIND_SERVICE = 1 << 10
CAP_NET_ADMIN = 1 << 12
CAP_SYS_NICE = 1 << 23


def status(path):
    fields = {}
    with open(path) as handle:
        for line in handle:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def thread_statuses(pid):
    return {int(os.path.basename(os.path.dirname(p))): status(p) for p in glob.glob(f"/proc/{pid}/task/*/status")}


def check_least_privilege(pid, accounts, expected_caps):
    # main (control plane), the control-socket thread and at least one worker; each
    # thread names itself as it starts, so give a loaded machine a moment.
    def named():
        names = sorted(t["Name"] for t in thread_statuses(pid).values())
        return "bloo-control" in names and any(n.startswith("bloo-worker") for n in names)
    wait_for(named)
    threads = thread_statuses(pid)
    assert len(threads) >= 3, threads.keys()
    names = sorted(t["Name"] for t in threads.values())
    assert "bloo-control" in names and any(n.startswith("bloo-worker") for n in names), names
    for tid, fields in [(pid, status(f"/proc/{pid}/status"))] + sorted(threads.items()):
        where = f"thread {tid} ({fields['Name']})"
        assert fields["Uid"].split() == [str(accounts.service_uid)] * 4, where
        assert fields["Gid"].split() == [str(accounts.service_gid)] * 4, where
        assert fields["Groups"] == "", where
        assert int(fields["CapEff"], 16) == expected_caps, (where, fields["CapEff"])
        assert int(fields["CapPrm"], 16) == expected_caps, (where, fields["CapPrm"])
        assert int(fields["CapBnd"], 16) == expected_caps, (where, fields["CapBnd"])
        assert int(fields["CapInh"], 16) == 0, where
        assert int(fields["CapAmb"], 16) == 0, where
        assert fields["NoNewPrivs"] == "1", where
    return threads


def test_service_user_keeps_only_net_admin(netns, daemons, accounts):
    ns = netns("priv")
    daemon = daemons(ns)
    # The factory default listens on 443; commit a configuration without low ports
    # and restart, so the capability set follows the configuration.
    assert daemon.commit(base_config(accounts.service, "set tunnel tcp 127.0.0.1:8443\n")).startswith("ok\n")
    assert daemon.stop() == 0
    daemon.start()
    check_least_privilege(daemon.pid, accounts, CAP_NET_ADMIN)
    system = daemon.show("system")
    assert system["uid"] == str(accounts.service_uid)
    assert system["capabilities"] == "cap_net_admin"
    assert system["no_new_privs"] == "1"
    # noroot, no_setuid_fixup, no_cap_ambient_raise and every *_LOCKED bit (keep_caps locked off).
    assert system["securebits"] == "0xef"
    assert "privileges dropped" in daemon.log()


def test_low_port_listener_keeps_net_bind_service(netns, daemons, accounts):
    ns = netns("priv")
    daemon = daemons(ns)  # factory default: TLS on 0.0.0.0:443
    check_least_privilege(daemon.pid, accounts, CAP_NET_ADMIN | CAP_NET_BIND_SERVICE)
    # The securebits are locked: root cannot be regained even through a setuid program.
    line = [l for l in open(f"/proc/{daemon.pid}/status") if l.startswith("NoNewPrivs")]
    assert line == ["NoNewPrivs:\t1\n"]


def test_realtime_scheduling_keeps_sys_nice(netns, daemons, accounts):
    ns = netns("priv")
    daemon = daemons(ns, extra_args=["--realtime-priority", "10"])
    threads = check_least_privilege(daemon.pid, accounts, CAP_NET_ADMIN | CAP_NET_BIND_SERVICE | CAP_SYS_NICE)
    # The kept CAP_SYS_NICE is what lets the workers (and only them) run SCHED_FIFO.
    for tid, fields in threads.items():
        with open(f"/proc/{daemon.pid}/task/{tid}/stat") as handle:
            after_name = handle.read().rsplit(")", 1)[1].split()
        rt_priority, policy = int(after_name[37]), int(after_name[38])  # fields 40 and 41
        if fields["Name"].startswith("bloo-worker"):
            assert (policy, rt_priority) == (1, 10), (fields["Name"], policy, rt_priority)
        else:
            assert (policy, rt_priority) == (0, 0), (fields["Name"], policy, rt_priority)


def test_workers_and_control_plane_are_pinned(netns, daemons, accounts):
    if os.cpu_count() < 2:
        pytest.skip("needs two CPUs")
    ns = netns("pin")
    daemon = daemons(ns)
    config = base_config(accounts.service, "set system cpus control 0\nset system cpus data 1\n")
    assert daemon.commit(config).startswith("ok\n")
    assert daemon.stop() == 0
    daemon.start()
    assert wait_for(lambda: sum(t["Name"].startswith("bloo-") for t in thread_statuses(daemon.pid).values()) >= 2)
    threads = thread_statuses(daemon.pid)
    for tid, fields in threads.items():
        expected = "1" if fields["Name"].startswith("bloo-worker") else "0"
        assert fields["Cpus_allowed_list"] == expected, (tid, fields["Name"], fields["Cpus_allowed_list"])
    # `show system` reports the same placement, read back with sched_getaffinity.
    system = daemon.show("system")
    reported = {int(k.split(".")[1]): v for k, v in system.items() if k.startswith("thread.")}
    assert set(reported) == set(threads)
    for tid, text in reported.items():
        name, _, cpus = text.partition(" cpus ")
        assert name == threads[tid]["Name"] and cpus == threads[tid]["Cpus_allowed_list"], text
    assert system["cpus.control"] == "0" and system["cpus.data"] == "1"


def test_missing_service_user_is_a_clear_failure(netns, bloo, tmp_path):
    ns = netns("priv")
    result = ns.run(str(bloo), "daemon", "--config-dir", str(tmp_path / "c"), "--run-dir", str(tmp_path / "r"),
                    "--control-socket", str(tmp_path / "r" / "s"), "--user", "no-such-user-xyz", check=False)
    assert result.returncode == 1
    assert "service user 'no-such-user-xyz': not in /etc/passwd" in result.stderr


def test_refuses_to_start_unprivileged(netns, bloo, tmp_path):
    ns = netns("priv")
    result = subprocess.run(["ip", "netns", "exec", ns.name, "setpriv", "--reuid", "64010", "--regid", "64010",
                             "--clear-groups", str(bloo), "daemon", "--config-dir", str(tmp_path / "c"),
                             "--run-dir", str(tmp_path / "r"), "--control-socket", str(tmp_path / "s")],
                            capture_output=True, text=True, timeout=20)
    assert result.returncode == 1
    assert "must be started as root" in result.stderr
