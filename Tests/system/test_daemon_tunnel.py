"""`bloo daemon` carrying the tunnel terminator (TunnelService): the real static daemon,
started as root in a namespace of its own with a configuration committed over the control
socket, serves TLS on a privileged port (bound before the privilege drop) and plain TCP
on a random port; the independent Python client authenticates with a configured
subscriber, registers, and makes a lab "echo" call carrying media. `show health` lists the
listeners; SIGHUP reloads a renewed certificate without dropping the tunnel; SIGTERM ends
the tunnels with BYE and the daemon exits 0."""
import contextlib
import ctypes
import os
import pathlib
import random
import shutil
import signal
import struct

import pytest

from bloo_daemon import accounts, base_config, daemons, wait_for  # noqa: F401  (fixtures)
from tunnel_client import BYE, CAP_UDP_UPGRADE, PCMA, UDP_OFFER, Closed, TunnelClient, rtp_packet
from tunnel_fixtures import SECRETS, make_ca, make_server_cert

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


@contextlib.contextmanager
def inside(ns):
    """Sockets created in this block belong to `ns` (this thread enters it, then returns)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/var/run/netns/{ns.name}", os.O_RDONLY)
    try:
        _setns(target)
        yield
    finally:
        _setns(own)
        os.close(own)
        os.close(target)


def connect(ns, endpoint, ca=None):
    with inside(ns):
        return TunnelClient(endpoint, tls_ca=ca)


def test_daemon_serves_tunnels_from_its_configuration(netns, daemons, accounts):
    ns = netns("dtun")
    daemon = daemons(ns)
    # Under the daemon's world-traversable directory: the service user reads the files
    # again on reload (after the drop).
    pki = pathlib.Path(daemon.dir) / "pki"
    pki.mkdir()
    os.chmod(pki, 0o755)
    ca = make_ca(pki, "daemon")
    key, cert = make_server_cert(pki, ca, "server")
    for path in (key, cert):
        shutil.chown(path, user=accounts.service)

    tls = ("127.0.0.1", 443)  # below 1024: bound as root in prepare, before the drop
    tcp = ("127.0.0.1", random.randint(20000, 29999))
    config = base_config(accounts.service,
                         f"set tunnel tls 127.0.0.1:443 certificate {cert}\n"
                         f"set tunnel tls 127.0.0.1:443 key {key}\n"
                         f"set tunnel tcp 127.0.0.1:{tcp[1]}\n"
                         f"set subscriber alice secret {SECRETS['alice'].decode()}\n"
                         f"set subscriber bob secret {SECRETS['bob'].decode()}\n")
    # A commit starts the new listener set at once (443 too: the factory default's 443
    # made the daemon keep CAP_NET_BIND_SERVICE) ...
    reply = daemon.commit(config)
    assert reply.startswith("ok\ncommit 1"), reply
    health = daemon.show("health")
    assert health["listener.tunnel.tls-127.0.0.1:443"] == "up" and health["healthy"] == "yes", health
    connect(ns, tcp).handshake("alice", SECRETS["alice"]).close()
    # ... and a restart binds them as root in prepare, served by the daemon's own workers.
    assert daemon.stop() == 0
    daemon.start()
    log = daemon.log()
    assert "tunnel-backend" in log and "backend=lab" in log and "no gatekeeper configured" in log, log

    health = daemon.show("health")
    assert health["listener.tunnel.tls-127.0.0.1:443"] == "up", health
    assert health[f"listener.tunnel.tcp-127.0.0.1:{tcp[1]}"] == "up", health
    assert health["gatekeeper"] == "not-configured" and health["healthy"] == "yes", health
    assert "cap_net_bind_service" in daemon.show("system")["capabilities"]

    # TLS: authenticate, REGISTER, an echo call with media both ways.
    alice = connect(ns, tls, ca=str(ca[1]))
    assert alice.sock.selected_alpn_protocol() == "bloo/1"
    alice.handshake("alice", SECRETS["alice"])
    assert b"alice" in alice.register("alice")
    assert alice.call(1, "echo", codecs=(PCMA,)) == (PCMA, 20)
    for sequence in range(10):
        alice.media(1, rtp_packet(sequence, payload_type=PCMA))
        assert alice.receive_media() == (1, 0, rtp_packet(sequence, payload_type=PCMA))
    # Plain TCP, the other subscriber; a wrong secret is refused.
    bob = connect(ns, tcp).handshake("bob", SECRETS["bob"])
    assert bob.ping()[0] == 1  # alice's call is counted
    with pytest.raises(AssertionError):
        connect(ns, tcp).handshake("bob", b"not-bobs-secret")

    # SIGHUP with a renewed certificate: new connections get it, alice's tunnel stays up.
    first_serial = alice.sock.getpeercert()["serialNumber"]
    make_server_cert(pki, ca, "server")
    for path in (key, cert):
        shutil.chown(path, user=accounts.service)
    daemon.process.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "tunnel-certificate-reloaded" in daemon.log(), timeout=10), daemon.log()
    renewed = connect(ns, tls, ca=str(ca[1]))
    assert renewed.sock.getpeercert()["serialNumber"] != first_serial
    renewed.close()
    alice.media(1, rtp_packet(99, payload_type=PCMA))
    assert alice.receive_media() == (1, 0, rtp_packet(99, payload_type=PCMA))

    # UDP audio (docs/tunnel-protocol.md §8) follows the configuration without a restart:
    # disabled, a client that asks for it gets no offer and its audio stays in the tunnel;
    # enabled again, the next call is offered UDP. alice's tunnel stays up throughout.
    reply = daemon.commit(config + "set tunnel udp-audio disable\n")
    assert reply.startswith("ok\ncommit"), reply
    tunnel_only = connect(ns, tcp).handshake("bob", SECRETS["bob"], capabilities=0x7 | CAP_UDP_UPGRADE)
    assert tunnel_only.call(2, "echo", codecs=(PCMA,)) == (PCMA, 20)
    for sequence in range(5):  # an offer here would fail receive_media
        tunnel_only.media(2, rtp_packet(sequence, payload_type=PCMA))
        assert tunnel_only.receive_media() == (2, 0, rtp_packet(sequence, payload_type=PCMA))
    tunnel_only.close()
    reply = daemon.commit(config + "set tunnel udp-audio fallback-ms 2000\n")
    assert reply.startswith("ok\ncommit"), reply
    offered = connect(ns, tcp).handshake("bob", SECRETS["bob"], capabilities=0x7 | CAP_UDP_UPGRADE)
    assert offered.call(3, "echo", codecs=(PCMA,)) == (PCMA, 20)
    channel, offer = offered.receive_type(UDP_OFFER)
    assert channel == 3 and len(offer) >= 22
    offered.close()
    # With a port range (for a firewall in front of the appliance), the next calls' UDP legs
    # are bound there, a call ending gives its port back behind the others.
    reply = daemon.commit(config + "set tunnel udp-audio ports 31000-31007\n")
    assert reply.startswith("ok\ncommit"), reply
    ports = []
    for attempt in range(3):
        closed = daemon.log().count("tunnel-udp-leg-closed alias=bob")
        ranged = connect(ns, tcp).handshake("bob", SECRETS["bob"], capabilities=0x7 | CAP_UDP_UPGRADE)
        assert ranged.call(4 + 2 * attempt, "echo", codecs=(PCMA,)) == (PCMA, 20)
        channel, offer = ranged.receive_type(UDP_OFFER)
        ports.append(struct.unpack(">H", offer[:2])[0])
        ranged.send(BYE, b"")  # the tunnel ends now (no grace period), and its call with it
        ranged.close()
        assert wait_for(lambda: daemon.log().count("tunnel-udp-leg-closed alias=bob") > closed, timeout=5), daemon.log()
    assert all(31000 <= port <= 31007 for port in ports), ports
    assert len(set(ports)) == 3, ports  # least recently released first: no port twice in a row
    refused = daemon.commit(config + "set tunnel udp-audio ports 20000-20010\nset relay ports 20005-20100\n")
    assert "overlap relay ports" in refused, refused
    alice.media(1, rtp_packet(100, payload_type=PCMA))
    assert alice.receive_media() == (1, 0, rtp_packet(100, payload_type=PCMA))

    # SIGTERM: every tunnel ends with BYE, listeners close, exit status 0.
    assert daemon.stop() == 0, daemon.log()
    for client in (alice, bob):
        seen = []
        with pytest.raises(Closed):
            while True:
                seen.append(client.receive()[0])
        assert BYE in seen, seen
    assert "tunnel-stopped" in daemon.log()
    with pytest.raises(OSError):
        connect(ns, tcp)
