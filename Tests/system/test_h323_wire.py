"""Our own H.323 encodings, judged by an independent decoder: tshark.

`bloo h323 samples` prints one encoding of every message kind we build with the typed API
(RAS on UDP 1719, Q.931/H.225.0 in TPKT on TCP 1720, H.245 in TPKT on TCP 1730). They are
written into a pcap here (struct, as ../shared/asn1/make_samples.py does) and tshark must
decode every frame as the expected protocol with no malformed packet and no expert warning.
A truncated copy of each frame is the negative control: tshark must flag those.
"""
import shutil
import struct
import subprocess

import pytest

EP, GK = bytes([192, 168, 1, 10]), bytes([10, 0, 0, 1])
TSHARK = ["tshark", "-d", "tcp.port==1730,h245"]
FLAG = "_ws.malformed || _ws.expert.severity >= warning"
EXPECTED_PROTOCOL = {"ras": "h225", "q931": "h225", "h245": "h245"}


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ipv4(src, dst, proto, payload, ident):
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0, 64, proto, 0, src, dst)
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:] + payload


def udp(src, dst, sport, dport, payload):
    segment = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    c = checksum(src + dst + struct.pack("!BBH", 0, 17, len(segment)) + segment) or 0xFFFF
    return segment[:6] + struct.pack("!H", c) + segment[8:]


def tcp(src, dst, sport, dport, seq, payload):
    segment = struct.pack("!HHIIBBHHH", sport, dport, seq, 1, 5 << 4, 0x18, 65535, 0, 0) + payload
    c = checksum(src + dst + struct.pack("!BBH", 0, 6, len(segment)) + segment)
    return segment[:16] + struct.pack("!H", c) + segment[18:]


def ether(packet):
    return bytes.fromhex("020000000002020000000001") + b"\x08\x00" + packet


def write_pcap(path, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, frame in enumerate(frames):
            f.write(struct.pack("<IIII", 1700000000 + i, 0, len(frame), len(frame)))
            f.write(frame)


def frames_for(samples, cut=0):
    """One frame per sample; with cut > 0 every payload loses its last `cut` octets."""
    frames, seq, ident = [], {1720: 1000, 1730: 1000}, 1
    for name, transport, payload in samples:
        if cut:
            if transport == "ras":
                payload = payload[:-cut]
            else:  # cut the message inside TPKT, keeping the framing consistent
                inner = payload[4:-cut]
                payload = struct.pack("!BBH", 3, 0, 4 + len(inner)) + inner
        if transport == "ras":
            frames.append(ether(ipv4(EP, GK, 17, udp(EP, GK, 1719, 1719, payload), ident)))
        else:
            port = 1720 if transport == "q931" else 1730
            frames.append(ether(ipv4(EP, GK, 6, tcp(EP, GK, 40000 + port, port, seq[port], payload), ident)))
            seq[port] += len(payload)
        ident += 1
    return frames


@pytest.fixture(scope="module")
def samples(bloo):
    out = subprocess.run([str(bloo), "h323", "samples"], check=True, capture_output=True, text=True).stdout
    result = []
    for line in out.splitlines():
        name, transport, hexs = line.split("\t")
        result.append((name, transport, bytes.fromhex(hexs)))
    return result


def tshark(*args):
    if shutil.which("tshark") is None:
        pytest.fail("tshark is missing: run 'make deps'")
    return subprocess.run([*TSHARK, *args], check=True, capture_output=True, text=True).stdout


def test_every_message_kind_is_present(samples):
    names = {name for name, _, _ in samples}
    for required in ["grq", "rrq", "rrq-keepalive", "rcf", "arq", "acf", "drq", "urq", "setup", "callproceeding",
                     "alerting", "connect", "facility-tunnel", "progress", "information", "notify", "status",
                     "releasecomplete", "msd", "tcs", "olc", "olc-ack", "clc", "uii-signal", "endsession"]:
        assert required in names


def test_tshark_decodes_our_encodings_cleanly(samples, tmp_path):
    pcap = tmp_path / "ours.pcap"
    write_pcap(pcap, frames_for(samples))
    flagged = tshark("-r", str(pcap), "-Y", FLAG, "-T", "fields", "-e", "frame.number", "-e", "_ws.expert.message")
    assert flagged.strip() == "", "tshark flagged frames:\n" + flagged
    protocols = tshark("-r", str(pcap), "-T", "fields", "-e", "frame.number", "-e", "frame.protocols").splitlines()
    assert len(protocols) == len(samples)
    for (name, transport, _), line in zip(samples, protocols):
        assert EXPECTED_PROTOCOL[transport] in line.split("\t")[1].split(":"), f"{name}: {line}"
    # tshark read the fields we put there, not just the framing.
    text = tshark("-r", str(pcap), "-V")
    for expected in ["registrationRequest", "keepAlive: True", "fastStart", "h245Tunnelling: True",
                     "terminalCapabilitySet", "g7231", "gsmFullRate", "receiveRTPAudioTelephonyEventCapability",
                     "h2250LogicalChannelParameters", "endSessionCommand", "Cause", "Calling party number",
                     "cryptoEPPwdHash", "Display"]:
        assert expected in text, expected


def test_tshark_flags_truncated_copies(samples, tmp_path):
    # The negative control: the same frames cut short must be reported, so a clean result
    # above means something.
    pcap = tmp_path / "cut.pcap"
    big = [s for s in samples if len(s[2]) > 12]
    write_pcap(pcap, frames_for(big, cut=3))
    total = len(big)
    flagged = tshark("-r", str(pcap), "-Y", "_ws.malformed || _ws.expert.severity >= warning", "-T", "fields", "-e", "frame.number")
    assert len(flagged.split()) >= total * 0.9, flagged


def test_decoder_rejects_hostile_input_cleanly(bloo):
    for kind, hexs in [("ras", "ff"), ("ras", "0ec0ffffffff"), ("uuie", "20b8"), ("h245", "0270"),
                       ("q931", "0802"), ("tpkt", "04000008")]:
        proc = subprocess.run([str(bloo), "h323", "decode", kind, hexs], capture_output=True, text=True)
        assert proc.returncode == 1, (kind, hexs, proc)
        assert proc.stderr.startswith("bloo: "), proc.stderr
