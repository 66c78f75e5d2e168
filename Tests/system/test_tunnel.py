"""The tunnel terminator (`bloo tunnel-serve`) against an independent Python client:
real TLS handshakes with certificates made here, bad peers, deadlines, limits,
probes, resume with audio, certificate reload, and 1,000 simultaneous tunnels."""
import re
import shutil
import socket
import ssl
import struct
import time

import pytest

from tunnel_client import (BYE, CALL, E_AUTH_TIMEOUT, E_MALFORMED, E_OVERLOADED, E_RATE_LIMITED, E_RESUME_REFUSED,
                           E_TOO_LARGE, E_UNEXPECTED, E_VERSION, E_AUTH_FAILED, HELLO, HEADER, PCMA, PING, Closed,
                           TunnelClient, frame, rtp_packet, string, tls_context)
from tunnel_fixtures import SECRETS, make_ca, make_server_cert, pki, raise_fd_limit, serve  # noqa: F401


def alice(server, tls=True, **kwargs):
    if tls:
        return TunnelClient(server.tls, tls_ca=kwargs.pop("ca", None) or kwargs.pop("ca_path"), **kwargs)
    return TunnelClient(server.tcp, **kwargs)


def test_tls_handshake_alpn_and_authentication(serve, pki):
    server = serve()
    client = TunnelClient(server.tls, tls_ca=str(pki["ca"]))
    assert client.sock.selected_alpn_protocol() == "bloo/1"
    assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
    client.handshake("alice", SECRETS["alice"])
    assert client.grace == 20 and len(client.token) == 16 and not client.resumed
    assert b"alice" in client.register("alice")
    assert client.ping() == (0, 1000)
    client.close()


def test_tls12_with_a_modern_cipher(serve, pki):
    server = serve()
    context = tls_context(str(pki["ca"]))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    client = TunnelClient(server.tls, context=context)
    assert client.sock.version() == "TLSv1.2"
    name, _, bits = client.sock.cipher()
    assert name.startswith("ECDHE-") and ("GCM" in name or "CHACHA20" in name) and bits >= 128
    client.handshake("bob", SECRETS["bob"])


def test_old_tls_and_weak_ciphers_are_refused(serve, pki):
    server = serve()
    context = tls_context(str(pki["ca"]))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("AES128-SHA")  # static RSA key exchange, no forward secrecy
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        TunnelClient(server.tls, context=context)


def test_client_with_the_wrong_ca_refuses_the_appliance(serve, pki):
    server = serve()
    with pytest.raises(ssl.SSLCertVerificationError):
        TunnelClient(server.tls, tls_ca=str(pki["other_ca"]))
    # The appliance carries on.
    TunnelClient(server.tls, tls_ca=str(pki["ca"])).handshake("alice", SECRETS["alice"]).ping()


def test_browser_alpn_is_refused_during_the_handshake(serve, pki):
    server = serve()
    context = tls_context(str(pki["ca"]), alpn=("h2", "http/1.1"))
    with pytest.raises(ssl.SSLError, match="NO_APPLICATION_PROTOCOL|no application protocol"):
        TunnelClient(server.tls, context=context)


def test_wrong_secret_gets_an_error_and_a_close(serve, pki):
    server = serve()
    client = TunnelClient(server.tls, tls_ca=str(pki["ca"]))
    with pytest.raises(AssertionError, match=str(E_AUTH_FAILED)):
        client.handshake("alice", b"not-the-secret")
    with pytest.raises(Closed):
        client.receive()


@pytest.mark.parametrize("port", ["tls", "tcp"])
def test_bad_peers_get_an_error_and_a_close_while_others_are_served(serve, pki, port):
    server = serve("--max-frame", "4096")
    good = TunnelClient(server.tls, tls_ca=str(pki["ca"])).handshake("alice", SECRETS["alice"])

    def peer():
        if port == "tls":
            return TunnelClient(server.tls, tls_ca=str(pki["ca"]))
        return TunnelClient(server.tcp)

    hello = frame(HELLO, struct.pack(">HHI", 1, 1, 0) + string("x"))
    cases = [
        ("oversize", hello + HEADER.pack(1, PING, 0, 5000) + bytes(100), E_TOO_LARGE),
        ("unknown type before HELLO", frame(0xEE, b"??"), E_UNEXPECTED),
        ("garbage", bytes(range(0x80, 0xC0)), E_VERSION),
        ("malformed HELLO", frame(HELLO, b"\x00"), E_MALFORMED),
        ("call before authentication", hello + frame(CALL, string("echo") + b"\x01\x00", 1), E_UNEXPECTED),
    ]
    for name, data, code in cases:
        bad = peer()
        bad.send_raw(data)
        got, text = bad.expect_error_and_close()
        assert got == code, f"{name}: {got} {text}"
        assert good.ping() == (0, 1000), name
    # Truncated: a frame cut short by the end of the stream.
    bad = peer()
    bad.send_raw(hello[:7])
    socket.socket.shutdown(bad.sock, socket.SHUT_WR)  # below TLS: the stream just ends
    got, text = bad.expect_error_and_close()
    assert got == E_MALFORMED and "inside a frame" in text
    assert good.ping() == (0, 1000)
    assert server.alive()


def test_http_request_on_the_tls_port_gets_a_readable_error(serve):
    server = serve()
    with socket.create_connection(server.tls, timeout=5) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        data = b""
        while True:
            chunk = raw.recv(4096)
            if not chunk:
                break
            data += chunk
    version, ftype, channel, length = HEADER.unpack(data[:8])
    assert (version, ftype) == (1, 0x50)
    code = struct.unpack(">H", data[8:10])[0]
    assert code == E_VERSION and b"TLS" in data


def test_tls_client_hello_on_the_plain_port_gets_an_error(serve, pki):
    server = serve()
    with socket.create_connection(server.tcp, timeout=5) as raw:
        raw.sendall(b"\x16\x03\x01\x00\x10" + bytes(16))
        data = raw.recv(4096)
    assert data[:2] == b"\x01\x50" and struct.unpack(">H", data[8:10])[0] == E_VERSION


def test_slow_loris_clients_time_out(serve, pki):
    server = serve("--auth-timeout", "2")
    good = TunnelClient(server.tcp).handshake("alice", SECRETS["alice"])
    trickler = TunnelClient(server.tcp)
    silent_tls = socket.create_connection(server.tls, timeout=5)  # TCP open, no ClientHello
    hello = frame(HELLO, struct.pack(">HHI", 1, 1, 0) + string("slow"))
    started = time.monotonic()
    for byte in hello:
        try:
            trickler.send_raw(bytes([byte]))
        except OSError:
            break
        time.sleep(0.3)
        if time.monotonic() - started > 1.5:
            break
    code, _ = trickler.expect_error_and_close()
    assert code == E_AUTH_TIMEOUT
    assert 1.8 < time.monotonic() - started < 6.0  # 2 s deadline, checked every 100 ms; slack for a loaded machine
    silent_tls.settimeout(3)
    assert silent_tls.recv(100) == b""  # closed by the appliance
    assert good.ping() == (0, 1000)  # authenticated clients are not subject to it


def test_per_source_rate_limit_and_global_cap(serve):
    server = serve("--rate", "0.01", "--burst", "3", "--max-connections", "1000", tls=False)
    clients = [TunnelClient(server.tcp) for _ in range(3)]
    refused = TunnelClient(server.tcp)
    assert refused.expect_error_and_close()[0] == E_RATE_LIMITED
    for client in clients:
        client.handshake("alice", SECRETS["alice"])

    capped = serve("--max-connections", "2", tls=False)
    kept = [TunnelClient(capped.tcp).handshake("bob", SECRETS["bob"]) for _ in range(2)]
    assert TunnelClient(capped.tcp).expect_error_and_close()[0] == E_OVERLOADED
    kept[0].send(BYE)
    kept[0].close()
    time.sleep(0.3)
    TunnelClient(capped.tcp).handshake("bob", SECRETS["bob"])  # room again


def test_udp_probe_answers_with_the_load(serve, pki):
    server = serve("--capacity", "1234")
    caller = TunnelClient(server.tls, tls_ca=str(pki["ca"])).handshake("alice", SECRETS["alice"])
    caller.call(1, "echo")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(2)
        request = b"BLP\x01\x01\x00\x00\x00" + struct.pack(">Q", 987654321) + bytes(16)
        probe.sendto(request, server.tls)
        reply, source = probe.recvfrom(100)
        assert source == server.tls and len(reply) == 32
        assert reply[:5] == b"BLP\x01\x02"
        echoed, _, calls, capacity = struct.unpack(">QQII", reply[8:32])
        assert (echoed, calls, capacity) == (987654321, 1, 1234)
        probe.sendto(request[:20], server.tls)  # shorter than the answer: ignored (no amplification)
        with pytest.raises(socket.timeout):
            probe.settimeout(0.5)
            probe.recvfrom(100)
    assert caller.ping() == (1, 1234)


def test_echo_call_media_and_dtmf(serve, pki):
    server = serve()
    client = TunnelClient(server.tls, tls_ca=str(pki["ca"])).handshake("alice", SECRETS["alice"])
    assert client.call(3, "echo", codecs=(PCMA,)) == (PCMA, 20)
    for sequence in range(10):
        client.media(3, rtp_packet(sequence))
        channel, kind, packet = client.receive_media()
        assert (channel, kind, packet) == (3, 0, rtp_packet(sequence))


def udp_peer():
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(2)
    return peer


EF_TOS = 46 << 2  # DSCP EF (RFC 3246) in the TOS byte


def receive_with_tos(sock):
    """One datagram and the TOS byte it arrived with (the socket has IP_RECVTOS on)."""
    data, ancillary, _, _ = sock.recvmsg(2048, socket.CMSG_SPACE(4))
    tos = [item[0] for level, kind, item in ancillary if level == socket.IPPROTO_IP and kind == socket.IP_TOS]
    return data, (tos[0] if tos else None)


def test_call_audio_to_the_far_end_is_marked_expedited_forwarding(serve, pki):
    """The audio the appliance sends over UDP towards the far end carries DSCP EF."""
    server = serve()
    peer = udp_peer()
    peer.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
    client = TunnelClient(server.tls, tls_ca=str(pki["ca"])).handshake("alice", SECRETS["alice"])
    client.register("alice")
    client.call(1, f"udp:127.0.0.1:{peer.getsockname()[1]}")
    client.media(1, rtp_packet(7))
    assert receive_with_tos(peer) == (rtp_packet(7), EF_TOS)
    client.close()
    server.stop()


def check_audio_both_ways(client, peer, channel, start):
    for sequence in range(start, start + 5):
        client.media(channel, rtp_packet(sequence))
        data, relay = peer.recvfrom(2048)
        assert data == rtp_packet(sequence)
        peer.sendto(rtp_packet(sequence, ssrc=0x9999), relay)
        got_channel, kind, packet = client.receive_media()
        assert (got_channel, kind, packet) == (channel, 0, rtp_packet(sequence, ssrc=0x9999))


def test_resume_keeps_the_call_audio_flowing(serve, pki):
    server = serve("--workers", "2")
    peer = udp_peer()
    client = TunnelClient(server.tls, tls_ca=str(pki["ca"])).handshake("alice", SECRETS["alice"])
    client.register("alice")
    client.call(1, f"udp:127.0.0.1:{peer.getsockname()[1]}")
    check_audio_both_ways(client, peer, 1, 0)
    token = client.token
    # Several breaks: with two workers the new connection often lands on the other
    # worker and is handed back to the one that holds the call.
    for attempt in range(6):
        client.sock.close()  # the laptop changed Wi-Fi: no BYE
        client = TunnelClient(server.tls, tls_ca=str(pki["ca"])).handshake("alice", SECRETS["alice"], token=token)
        assert client.resumed and client.token == token, attempt
        check_audio_both_ways(client, peer, 1, 100 * (attempt + 1))
    assert client.ping()[0] == 1
    assert "tunnel-resumed" in server.log()


def test_after_the_grace_period_the_call_is_released(serve, pki):
    server = serve("--grace", "1")
    client = TunnelClient(server.tcp).handshake("alice", SECRETS["alice"])
    client.call(1, "echo")
    token = client.token
    client.sock.close()
    time.sleep(1.6)
    late = TunnelClient(server.tcp).handshake("alice", SECRETS["alice"], token=token)
    assert late.resume_refused and not late.resumed and late.token != token
    assert late.ping()[0] == 0  # the call was released
    assert "grace-expired" in server.log()


def test_bye_ends_the_session_without_resume(serve):
    server = serve(tls=False)
    client = TunnelClient(server.tcp).handshake("alice", SECRETS["alice"])
    client.call(1, "echo")
    token = client.token
    client.send(BYE)
    with pytest.raises(Closed):
        client.receive()
    again = TunnelClient(server.tcp).handshake("alice", SECRETS["alice"], token=token)
    assert again.resume_refused and again.ping()[0] == 0


def test_certificate_reload_keeps_existing_connections(serve, pki, tmp_path):
    cert, key = tmp_path / "live.pem", tmp_path / "live.key"
    shutil.copy(pki["cert"], cert)
    shutil.copy(pki["key"], key)
    server = serve(cert=cert, key=key)
    old = TunnelClient(server.tls, tls_ca=str(pki["ca"])).handshake("alice", SECRETS["alice"])
    new_ca = make_ca(tmp_path, "renewed")
    new_key, new_cert = make_server_cert(tmp_path, new_ca, "renewed-server")
    shutil.copy(new_cert, cert)
    shutil.copy(new_key, key)
    server.reload()
    deadline = time.monotonic() + 5
    while "tunnel-certificate-reloaded" not in server.log():
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.05)
    TunnelClient(server.tls, tls_ca=str(new_ca[1])).handshake("bob", SECRETS["bob"]).ping()
    with pytest.raises(ssl.SSLCertVerificationError):
        TunnelClient(server.tls, tls_ca=str(pki["ca"]))
    assert old.ping() == (0, 1000)  # still on the old certificate's connection
    # A broken file leaves the current certificate in place.
    key.write_text("not a key")
    server.reload()
    time.sleep(0.5)
    assert "tunnel-certificate-reload-failed" in server.log()
    TunnelClient(server.tls, tls_ca=str(new_ca[1])).handshake("bob", SECRETS["bob"])


def test_a_thousand_simultaneous_tunnels(serve, pki):
    count = 1000
    assert raise_fd_limit(count + 200) >= count + 100
    server = serve("--rate", "100000", "--burst", "100000", "--workers", "2")
    context = tls_context(str(pki["ca"]))
    clients = []
    try:
        # Each is authenticated as soon as it is open (the 10 s deadline is per connection);
        # all of them stay open, so at the end 1,000 authenticated tunnels exist at once.
        for index in range(count):
            client = TunnelClient(server.tls, context=context, timeout=20)
            clients.append(client)
            client.handshake(f"load{index}", f"load-secret-{index}".encode())
        for client in clients:  # every one of them still answers
            assert client.ping() == (0, 1000)
    finally:
        for client in clients:
            client.close()
    assert server.alive()


def test_stale_media_is_dropped_and_signalling_still_arrives(serve):
    """A client that stops reading (a stalled TCP window): its media is dropped once older
    than the bound instead of queueing, while signalling still reaches it afterwards."""
    server = serve("--media-age-ms", "60", tls=False)
    peer = udp_peer()
    client = TunnelClient(server.tcp, receive_buffer=4096).handshake("alice", SECRETS["alice"])
    client.call(1, f"udp:127.0.0.1:{peer.getsockname()[1]}")
    client.media(1, rtp_packet(0))
    _, relay = peer.recvfrom(2048)
    sent = 2000
    for sequence in range(sent):  # paced, so that the UDP socket buffer does not overflow first
        peer.sendto(rtp_packet(sequence, size=1000), relay)
        if sequence % 50 == 0:
            time.sleep(0.002)
    time.sleep(0.6)  # not reading: everything still queued is now older than 60 ms
    client.send(PING, struct.pack(">Q", 1))
    media = 0
    while True:
        ftype, _, _ = client.receive()
        if ftype == 0x30:
            media += 1
        elif ftype == 0x41:  # PONG: signalling got through
            break
    assert 0 < media < sent
    client.send(BYE)
    client.close()
    deadline = time.monotonic() + 5
    while "tunnel-closed" not in server.log():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    dropped = int(re.search(r"tunnel-closed .*media_dropped_stale=(\d+)", server.log()).group(1))
    assert dropped > 0 and dropped + media <= sent + 1


def test_udp_upgrade_as_the_document_describes(serve, pki):
    """The client side of §8 written from the document: offer after CONNECTED, keyed
    probes, latching, audio on UDP both ways (MEDIA frames stop), forged and replayed
    probes ignored, and the fallback to MEDIA frames when UDP falls silent."""
    from tunnel_client import CAP_UDP_UPGRADE, PONG, UDP_OFFER, UDP_PATH, udp_control
    server = serve("--udp-fallback-ms", "400")
    client = TunnelClient(server.tls, tls_ca=str(pki["ca"])).handshake("alice", SECRETS["alice"],
                                                                        capabilities=0x7 | CAP_UDP_UPGRADE)
    assert client.call(5, "echo", codecs=(PCMA,)) == (PCMA, 20)
    channel, offer = client.receive_type(UDP_OFFER)
    port, address = struct.unpack(">HI", offer[:6])
    key = offer[6:22]
    assert channel == 5 and address == 0 and len(key) == 16 and port > 0
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.settimeout(2)
    udp.connect((server.tls[0], port))
    # RTP before any proof and a probe made with the wrong key get nothing back.
    udp.send(rtp_packet(0))
    udp.send(udp_control(1, 5, 1, bytes(16)))
    with pytest.raises(socket.timeout):
        udp.settimeout(0.5)
        udp.recv(2048)
    udp.settimeout(2)
    udp.send(udp_control(1, 5, 2, key))
    assert udp.recv(2048) == udp_control(2, 5, 2, key)
    # A replay of the accepted probe is not answered.
    udp.send(udp_control(1, 5, 2, key))
    # Audio on UDP: the echo comes back on UDP, marked EF, and the appliance says the path is UDP.
    udp.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
    for sequence in range(1, 11):
        udp.send(rtp_packet(sequence))
        assert receive_with_tos(udp) == (rtp_packet(sequence), EF_TOS)
    assert client.receive_type(UDP_PATH, skip=(PONG,)) == (5, bytes([1]))
    # No MEDIA frame came through the tunnel meanwhile: the next frame is our PONG.
    client.send(PING, struct.pack(">Q", 1))
    ftype, _, _ = client.receive()
    assert ftype == PONG
    # UDP falls silent: after 0.4 s the appliance falls back and says so; MEDIA frames echo again.
    assert client.receive_type(UDP_PATH, skip=(PONG,)) == (5, bytes([0]))
    client.media(5, rtp_packet(20))
    assert client.receive_media() == (5, 0, rtp_packet(20))
    # The old source is forgotten: its RTP is dropped until a fresh probe proves it again.
    udp.send(rtp_packet(21))
    time.sleep(0.2)
    client.send(PING, struct.pack(">Q", 2))
    ftype, _, _ = client.receive()
    assert ftype == PONG  # no echo of packet 21, neither in the tunnel nor (below) on UDP
    udp.send(udp_control(1, 5, 3, key))
    assert udp.recv(2048) == udp_control(2, 5, 3, key)
    client.close()
    udp.close()
    server.stop()
    log = server.stderr_path.read_text()
    assert re.search(r"tunnel-udp-audio .*channel=5", log), log
    assert re.search(r"tunnel-udp-fallback .*channel=5", log), log
