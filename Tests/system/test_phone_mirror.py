"""`bloo phone` through the real H.323 path: the phone sits behind a MASQUERADE NAT, the
lab gatekeeper rejects NATed endpoints, so the phone's direct registration gets an RRJ and it
falls back to the tunnel; the appliance's mirror carries the call to the lab gateway. Audio
both ways, checked by ToneDetector: 1 kHz from the phone heard at the gateway, 2 kHz from
the gateway heard by the phone. Inbound: `bloo phone listen` answers a call from a second
gateway. Namespaces and NAT come from test_mirror's `lab` fixture."""
import os
import re
import signal
import subprocess
import time

from test_mirror import APPL_IN, APPL_OUT, NAT_IN, OPER, PHONE, SECRET, lab, released, tshark_fields  # noqa: F401

PHONE_ARGS = ["--alias", "alice", "--secret", SECRET, "--appliances", f"tcp:{APPL_IN}:7443"]


def route_operator_to_nat(lab):
    # Let the phone's direct RAS attempt reach the gatekeeper (through the NAT), so that
    # the gatekeeper, not a missing route, decides.
    lab.namespaces["appl"].run("sysctl", "-qw", "net.ipv4.ip_forward=1")
    lab.namespaces["oper"].run("ip", "route", "add", "10.77.2.0/24", "via", APPL_OUT)


def test_nat_rrj_then_tunnel_call_through_the_mirror_with_tones_both_ways(lab, bloo):
    gk, gw = lab.operator(gatekeeper_args=["--reject-nat"])
    lab.appliance()
    route_operator_to_nat(lab)
    state = lab.directory / "phone-state"
    result = lab.namespaces["phone"].run(str(bloo), "phone", "call", "0123456", *PHONE_ARGS,
                                         "--gatekeeper", f"{OPER}:1719", "--state", str(state),
                                         "--tone", "1000", "--expect-tone", "2000", "--duration", "5",
                                         check=False, timeout=90)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "rejected the registration (RRJ, invalidRASAddress" in out, out
    assert "falling back to the tunnel" in out
    assert "registered alice (tunnel over TCP" in out
    assert re.search(r"connected \(call 1\), codec PCM[AU]", out), out
    presence = int(re.search(r"tone 2000 Hz: present in (\d+)%", out).group(1))
    assert presence >= 80, out
    at_gateway = released(gw)
    assert float(at_gateway["tone_presence"]) >= 0.8, at_gateway
    assert "summary: path tunnel over TCP" in out
    assert f"{PHONE} {NAT_IN} tunnel" in state.read_text()


def test_listen_answers_an_inbound_call_through_the_mirror(lab, bloo):
    gk, _ = lab.operator()
    lab.appliance()
    listener = lab.namespaces["phone"].popen(str(bloo), "phone", "listen", *PHONE_ARGS, "--tone", "1000",
                                             "--expect-tone", "2000", "--duration", "25",
                                             stdout=subprocess.PIPE, text=True)
    try:
        gk.wait_for("registered endpoint=.* aliases=alice")
        caller = lab.start("oper", "caller", "lab", "gateway", "--signalling", f"{OPER}:1730", "--gatekeeper",
                           f"{OPER}:1719", "--alias", "labcaller", "--call", "alice", "--tone", "2000",
                           "--expect-tone", "1000", "--h245", "tunnelled", "--hangup-after", "5000", "--cause", "16")
        at_caller = released(caller)
        assert float(at_caller["tone_presence"]) >= 0.8, at_caller
    finally:
        listener.terminate()
        out, _ = listener.communicate(timeout=15)
    assert "incoming call 2 from labcaller to alice" in out, out
    assert "answering call 2" in out
    assert "call ended (call 2): the far end hung up (normal clearing)" in out, out


def test_dtmf_all_digits_both_ways_between_the_phone_and_the_gateway(lab, bloo):
    # The tunnel carries the digit's ASCII code (docs/tunnel-protocol.md §3); the mirror maps
    # it to and from H.245 UserInputIndication. Every digit, in order, both ways.
    digits = "0123456789*#"
    _, gw = lab.operator(gateway_args=["--dtmf", digits])
    lab.appliance()
    result = lab.namespaces["phone"].run(str(bloo), "phone", "call", "0123456", *PHONE_ARGS, "--duration", "5",
                                         "--dtmf", digits, check=False, timeout=60)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert [f"sent DTMF {d}" for d in digits] == re.findall(r"sent DTMF .", out), out
    assert "".join(re.findall(r"dtmf received (.)", out)) == digits, out
    assert released(gw)["digits"] == digits


CAROL_SECRET = "carol-gk-secret-1"


def h235_operator(lab):
    """An operator gatekeeper that checks H.235 password tokens against its own table; the
    appliance holds only alice and leaves other aliases to that gatekeeper."""
    passwords = lab.directory / "gk-passwords"
    passwords.write_text(f"carol {CAROL_SECRET}\n")
    gk, gw = lab.operator(gatekeeper_args=["--h235-passwords", str(passwords)])
    lab.appliance("--gatekeeper-auth")
    return gk, gw


def carol(lab, bloo, secret, *extra):
    return lab.namespaces["phone"].run(str(bloo), "phone", "call", "0123456", "--alias", "carol", "--secret", secret,
                                       "--appliances", f"tcp:{APPL_IN}:7443", "--gatekeeper-auth", *extra,
                                       check=False, timeout=60)


def test_h235_good_secret_registers_through_the_operator_gatekeeper_and_calls(lab, bloo):
    gk, gw = h235_operator(lab)
    tshark, pcap = lab.capture()
    result = carol(lab, bloo, CAROL_SECRET, "--tone", "1000", "--expect-tone", "2000", "--duration", "3")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "leaves the credentials to the operator's gatekeeper (H.235)" in out, out
    assert "registered carol (tunnel over TCP" in out, out
    assert re.search(r"connected \(call 1\), codec PCM[AU]", out), out
    # The gatekeeper, not the appliance, checked carol's password hash.
    gk.wait_for(r"registered endpoint=\S+ from=10\.77\.3\.1:4000\d aliases=carol h235=verified")
    assert float(released(gw)["tone_presence"]) >= 0.8
    time.sleep(1.0)
    tshark.send_signal(signal.SIGINT)
    tshark.wait(10)
    # On the operator link: the RRQ carries an MD5 cryptoEPPwdHash for carol; the secret itself never appears.
    rrq = tshark_fields(pcap, "-Y", "h225.registrationRequest_element", "-T", "fields", "-e", "h225.alias",
                        "-e", "h235.algorithmOID", "-e", "h235.hash")
    assert "1.2.840.113549.2.5" in rrq, rrq
    assert CAROL_SECRET.encode() not in pcap.read_bytes()
    assert CAROL_SECRET.encode("utf-16-be") not in pcap.read_bytes()


def test_h235_bad_secret_is_rejected_with_a_readable_reason(lab, bloo):
    gk, _ = h235_operator(lab)
    result = carol(lab, bloo, "carol-wrong-secret", "--duration", "3")
    out = result.stdout
    assert result.returncode != 0, out
    assert "registration rejected: the operator's gatekeeper refused the credentials: " \
           "the gatekeeper refused the credentials (securityDenial)" in out, out
    assert "connected" not in out
    gk.wait_for(r"registration rejected from=10\.77\.3\.1:4000\d reason=securityDenial h235=\"wrong password hash for carol\"")


def test_without_gatekeeper_auth_an_unknown_alias_is_refused_by_the_appliance(lab, bloo):
    lab.operator()
    lab.appliance()
    result = carol(lab, bloo, CAROL_SECRET, "--duration", "3")
    assert result.returncode != 0
    assert "error 200" in result.stdout, result.stdout


def goertzel_share(frame, hz, rate=8000):
    """The share of a frame's energy at `hz` (as RTP/Tone.swift's detector computes it)."""
    import math
    n = len(frame)
    k = round(n * hz / rate)
    coefficient = 2 * math.cos(2 * math.pi * k / n)
    s1 = s2 = 0.0
    for x in frame:
        s1, s2 = x + coefficient * s1 - s2, s1
    power = (s1 * s1 + s2 * s2 - coefficient * s1 * s2) / n
    energy = sum(x * x for x in frame)
    return 0.0 if energy == 0 else min(1.0, 2 * power / energy)


def test_phone_plays_early_media_before_the_answer(lab, bloo):
    # The gateway plays a 400 Hz ringback for 3 s before it answers, then 2 kHz: the phone's
    # recording holds the ringback first, then the answer's tone.
    import array
    import wave
    _, gw = lab.operator(gateway_args=["--early-media", "400", "--answer-delay", "3000"])
    lab.appliance()
    heard = lab.directory / "heard.wav"
    result = lab.namespaces["phone"].run(str(bloo), "phone", "call", "0123456", *PHONE_ARGS, "--tone", "1000",
                                         "--record", str(heard), "--duration", "3", check=False, timeout=60)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "early media from the far end" in out, out
    assert re.search(r"connected \(call 1\), codec PCM[AU]", out), out
    assert out.index("early media from the far end") < out.index("connected (call 1)")
    with wave.open(str(heard)) as w:
        samples = array.array("h", w.readframes(w.getnframes()))
    frames = [samples[i:i + 160] for i in range(0, len(samples) - 159, 160)]
    ringback = [i for i, f in enumerate(frames) if goertzel_share(f, 400) >= 0.6]
    answer = [i for i, f in enumerate(frames) if goertzel_share(f, 2000) >= 0.6]
    assert len(ringback) >= 100 and len(answer) >= 100, (len(ringback), len(answer), len(frames))
    assert max(ringback) < min(answer) + 10  # the ringback came first
    # The gateway got silence from the phone before the answer, then the 1 kHz tone (3 s each).
    assert float(released(gw)["tone_presence"]) >= 0.35


def test_h235_independent_client_written_from_the_document(lab):
    # tunnel_client.py computes the token from docs/tunnel-protocol.md §4.1 alone (PER by hand,
    # hashlib's MD5); it runs behind the NAT like the phone.
    h235_operator(lab)
    here = os.path.dirname(os.path.abspath(__file__))

    def client(secret, time_stamp):
        # Prints the outcome, then keeps the tunnel (and so the registration) up for a while.
        script = (f"import sys, time; sys.path.insert(0, {here!r}); from tunnel_client import TunnelClient; "
                  f"c = TunnelClient(({APPL_IN!r}, 7443)); "
                  f"print(repr(c.handshake_gatekeeper('carol', {secret!r}, {time_stamp})), flush=True); time.sleep(4)")
        return lab.namespaces["phone"].popen("python3", "-c", script, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                             text=True)

    now = int(time.time())
    good = client(CAROL_SECRET.encode(), now)
    line = good.stdout.readline()
    assert line.startswith("('registered', b'"), line + good.stderr.read()
    # The same token again while carol is registered (a token captured on the wire and
    # replayed through another tunnel), then a wrong secret.
    replay = client(CAROL_SECRET.encode(), now)
    out, err = replay.communicate(timeout=30)
    assert "('rejected', 17, 'the gatekeeper refused the credentials as a replay (securityReplay)')" in out, out + err
    wrong = client(b"not-carols-secret", now + 1)
    out, err = wrong.communicate(timeout=30)
    assert "('rejected', 11, 'the gatekeeper refused the credentials (securityDenial)')" in out, out + err
    good.kill()
    good.communicate(timeout=10)
