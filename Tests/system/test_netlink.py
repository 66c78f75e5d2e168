"""The interface manager against the real kernel, inside namespaces the tests create:
veth pairs configured, reconfigured and left alone; an unmanaged interface untouched;
events seen and re-reconciled; errors naming the kernel's reason. VLAN sub-interfaces
and dummy interfaces need the 8021q and dummy drivers, which container and CI kernels
lack: test_vlan_qemu.py tests them on a real Debian kernel under qemu."""
import json
import subprocess

import pytest

from bloo_daemon import accounts, base_config, daemons, wait_for  # noqa: F401  (fixtures)


def links(ns):
    return {link["ifname"]: link for link in json.loads(ns.run("ip", "-j", "-d", "link", "show").stdout)}


def addresses(ns, name):
    data = json.loads(ns.run("ip", "-j", "addr", "show", "dev", name).stdout)
    return sorted(f'{a["local"]}/{a["prefixlen"]}' for a in data[0]["addr_info"] if a.get("scope") != "link")


def routes(ns, family="-4"):
    return json.loads(ns.run("ip", "-j", family, "route", "show", "table", "main").stdout)


def make_namespace(netns):
    ns = netns("nl")
    ns.run("ip", "link", "add", "a0", "type", "veth", "peer", "name", "a1")
    # The unmanaged pair: configured by hand, must never be touched.
    ns.run("ip", "link", "add", "u0", "type", "veth", "peer", "name", "u1")
    ns.run("ip", "addr", "add", "10.9.9.9/24", "dev", "u0")
    ns.run("ip", "link", "set", "u0", "mtu", "1300", "up")
    ns.run("ip", "link", "set", "u1", "up")
    ns.run("ip", "route", "add", "10.77.0.0/16", "via", "10.9.9.1")
    return ns


def unmanaged_state(ns):
    link = links(ns)["u0"]
    return (link["ifindex"], link["mtu"], link["flags"], addresses(ns, "u0"),
            [r for r in routes(ns) if r.get("dev") == "u0"])


CONFIG_1 = """set interfaces a0 mtu 1400
set interfaces a0 address 192.0.2.5/24
set interfaces a0 address 2001:db8:1::5/64
set interfaces a1 address 192.0.2.6/24
set routes static 203.0.113.0/24 next-hop 192.0.2.1
set routes default next-hop 192.0.2.1
set routes default next-hop 2001:db8:1::1
set routes static 2001:db8:99::/48 next-hop 2001:db8:1::1
"""

CONFIG_2 = """set interfaces a0 mtu 1500
set interfaces a0 address 192.0.2.7/24
set interfaces a1 address 192.0.2.6/24
set interfaces a1 disable
set routes static 198.51.100.0/24 next-hop 192.0.2.1
"""


def test_configure_reconfigure_and_leave_alone(netns, daemons, accounts):
    ns = make_namespace(netns)
    before = unmanaged_state(ns)
    daemon = daemons(ns)
    reply = daemon.commit(base_config(accounts.service, CONFIG_1))
    assert reply.startswith("ok\ncommit"), reply
    for change in ["a0: MTU 1500 -> 1400", "a0: up", "a0: address 192.0.2.5/24 added",
                   "a0: address 2001:db8:1::5/64 added", "a1: address 192.0.2.6/24 added",
                   "route 203.0.113.0/24 via 192.0.2.1 added", "route default via 192.0.2.1 added"]:
        assert change in reply, reply
    state = links(ns)
    assert state["a0"]["mtu"] == 1400 and "UP" in state["a0"]["flags"]
    assert "UP" in state["a1"]["flags"]
    assert addresses(ns, "a0") == ["192.0.2.5/24", "2001:db8:1::5/64"]
    assert addresses(ns, "a1") == ["192.0.2.6/24"]
    table = {r["dst"]: r for r in routes(ns)}
    assert table["203.0.113.0/24"]["gateway"] == "192.0.2.1"
    assert table["default"]["gateway"] == "192.0.2.1"
    assert str(table["default"]["protocol"]) in ("157", "bloo")
    table6 = {r["dst"]: r for r in routes(ns, "-6")}
    assert table6["default"]["gateway"] == "2001:db8:1::1" and table6["default"]["dev"] == "a0"
    assert table6["2001:db8:99::/48"]["gateway"] == "2001:db8:1::1"
    assert unmanaged_state(ns) == before

    # The same configuration again: nothing changes, nothing flaps.
    index = state["a0"]["ifindex"]
    events_before = len(daemon.show("events"))
    reply = daemon.commit(base_config(accounts.service, CONFIG_1))
    assert reply.startswith("ok\ncommit") and reply.strip().count("\n") == 1, reply
    assert links(ns)["a0"]["ifindex"] == index
    new_events = list(daemon.show("events").values())[events_before:]
    assert not [e for e in new_events if " a0" in e or " a1" in e], new_events

    # Reconfigure: MTU back, address replaced, IPv6 dropped, a1 down, routes swapped.
    reply = daemon.commit(base_config(accounts.service, CONFIG_2))
    assert reply.startswith("ok\ncommit"), reply
    assert "a0: address 192.0.2.5/24 removed" in reply and "a0: address 2001:db8:1::5/64 removed" in reply
    assert "a1: down" in reply
    state = links(ns)
    assert state["a0"]["mtu"] == 1500
    assert "UP" not in state["a1"]["flags"]
    assert addresses(ns, "a0") == ["192.0.2.7/24"]
    dsts = {r["dst"] for r in routes(ns)}
    assert "198.51.100.0/24" in dsts and "203.0.113.0/24" not in dsts and "default" not in dsts
    assert {r["dst"] for r in routes(ns, "-6")}.isdisjoint({"default", "2001:db8:99::/48"})
    # Someone else's route and interface survive every commit.
    assert "10.77.0.0/16" in dsts
    assert unmanaged_state(ns) == before

    shown = daemon.show("interfaces")
    assert shown["a0.managed"] == "yes" and shown["u0.managed"] == "no"
    assert shown["a0.addresses"] == "192.0.2.7/24" or shown["a0.addresses"].startswith("192.0.2.7/24,")


def test_failed_change_names_the_kernel_reason_and_the_rest_applies(netns, daemons, accounts):
    ns = make_namespace(netns)
    daemon = daemons(ns)
    ns.run("ip", "link", "set", "a0", "up")
    ns.run("ip", "addr", "add", "192.0.2.5/24", "dev", "a0")
    # A route that someone else installed: the manager's exclusive add must fail.
    ns.run("ip", "route", "add", "203.0.113.0/24", "via", "192.0.2.1", "proto", "static")
    config = CONFIG_1 + "set interfaces nosuch0 address 192.0.2.99/24\n"
    reply = daemon.commit(base_config(accounts.service, config))
    assert reply.startswith("error failed commit"), reply
    assert "route 203.0.113.0/24 via 192.0.2.1: File exists" in reply, reply
    assert "nosuch0: no such interface" in reply, reply
    # Everything else was applied.
    assert links(ns)["a0"]["mtu"] == 1400
    assert addresses(ns, "a1") == ["192.0.2.6/24"]
    assert "default" in {r["dst"] for r in routes(ns)}
    health = daemon.show("health")
    assert health["config"] == "errors" and health["healthy"] == "no"
    assert any("File exists" in v for k, v in health.items() if k.startswith("config.error"))
    # The foreign route is left as it was.
    foreign = [r for r in routes(ns) if r["dst"] == "203.0.113.0/24"]
    assert len(foreign) == 1 and foreign[0]["protocol"] == "static"


def test_events_are_seen_and_reconciled(netns, daemons, accounts):
    ns = make_namespace(netns)
    daemon = daemons(ns)
    assert daemon.commit(base_config(accounts.service, CONFIG_1)).startswith("ok\n")

    # Someone removes a managed address: seen, logged, put back.
    ns.run("ip", "addr", "del", "192.0.2.5/24", "dev", "a0")
    assert wait_for(lambda: "192.0.2.5/24" in addresses(ns, "a0")), addresses(ns, "a0")
    events = list(daemon.show("events").values())
    assert any("address-removed a0 192.0.2.5/24" in e for e in events), events

    # Someone deletes a route the configuration owns: put back too.
    ns.run("ip", "route", "del", "203.0.113.0/24")
    assert wait_for(lambda: "203.0.113.0/24" in {r["dst"] for r in routes(ns)})

    # Carrier loss: the peer goes down.
    ns.run("ip", "link", "set", "a1", "down")
    assert wait_for(lambda: any("carrier-lost a0" in e for e in daemon.show("events").values()))
    # a1 is managed and enabled: it is brought back up.
    assert wait_for(lambda: "UP" in links(ns)["a1"]["flags"])
    assert wait_for(lambda: any("carrier-restored a0" in e for e in daemon.show("events").values()))

    # A new interface appears: reported, not touched.
    ns.run("ip", "link", "add", "n0", "type", "veth", "peer", "name", "n1")
    assert wait_for(lambda: any("interface-added n0" in e for e in daemon.show("events").values()))
    assert "UP" not in links(ns)["n0"]["flags"]
    assert "network event event=interface-added interface=n0" in daemon.log()

    # A configured interface that did not exist yet is configured when it appears.
    config = CONFIG_1 + "set interfaces late0 address 192.0.2.200/24\n"
    reply = daemon.commit(base_config(accounts.service, config))
    assert "late0: no such interface" in reply
    ns.run("ip", "link", "add", "late0", "type", "veth", "peer", "name", "late1")
    assert wait_for(lambda: "late0" in links(ns) and addresses(ns, "late0") == ["192.0.2.200/24"]), daemon.log()
