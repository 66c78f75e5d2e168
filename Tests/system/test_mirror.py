"""The mirror end to end, in network namespaces made here:

    phone (10.77.1.2) --NAT (MASQUERADE)-- appliance (10.77.2.1 | 10.77.3.1) -- operator (10.77.3.2)

The phone side is `bloo lab client` (the Tunnel module's client handshake, a 1 kHz tone as
G.711 RTP, a ToneDetector on what comes back); the operator runs `bloo lab gatekeeper` and
`bloo lab gateway` (2 kHz tone, ToneDetector on what it receives). The operator namespace has
no route to the phone's private network: a call only works through the appliance's mirror.
A tshark capture on the operator link checks the H.225.0/H.245 on the wire."""
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

PHONE, NAT_IN, NAT_OUT, APPL_IN, APPL_OUT, OPER = ("10.77.1.2", "10.77.1.1", "10.77.2.2", "10.77.2.1",
                                                   "10.77.3.1", "10.77.3.2")
SECRET = "mirror-test-secret"
SIGNALLING_PORTS = (41000, 41009)


def veth(a, a_ip, b, b_ip, name):
    subprocess.run(["ip", "link", "add", f"{name}a", "type", "veth", "peer", "name", f"{name}b"], check=True)
    subprocess.run(["ip", "link", "set", f"{name}a", "netns", a.name], check=True)
    subprocess.run(["ip", "link", "set", f"{name}b", "netns", b.name], check=True)
    a.run("ip", "addr", "add", f"{a_ip}/24", "dev", f"{name}a")
    b.run("ip", "addr", "add", f"{b_ip}/24", "dev", f"{name}b")
    a.run("ip", "link", "set", f"{name}a", "up")
    b.run("ip", "link", "set", f"{name}b", "up")
    return f"{name}a", f"{name}b"


class Proc:
    def __init__(self, ns, directory, name, argv):
        self.name = name
        self.err_path = directory / f"{name}.err"
        self.err = open(self.err_path, "w")
        self.p = ns.popen(*argv, stdout=subprocess.DEVNULL, stderr=self.err)

    def log(self):
        self.err.flush()
        return self.err_path.read_text()

    def wait_for(self, pattern, timeout=20.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(pattern, self.log())
            if m:
                return m
            if self.p.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{self.name}: no '{pattern}' within {timeout}s:\n{self.log()}")

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.err.close()


@pytest.fixture
def lab(netns, bloo, tmp_path):
    """Namespaces, NAT, and a function to start the pieces; everything stopped at the end."""
    phone, nat, appl, oper = netns("mphone"), netns("mnat"), netns("mappl"), netns("moper")
    tag = os.urandom(2).hex()
    veth(phone, PHONE, nat, NAT_IN, f"mp{tag}")
    veth(nat, NAT_OUT, appl, APPL_IN, f"mn{tag}")
    _, oper_if = veth(appl, APPL_OUT, oper, OPER, f"mo{tag}")
    phone.run("ip", "route", "add", "default", "via", NAT_IN)
    nat.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
    nat.run("ip", "route", "add", "default", "via", APPL_IN)
    nat.run("iptables", "-t", "nat", "-A", "POSTROUTING", "-o", f"mn{tag}a", "-j", "MASQUERADE")
    procs = []

    class Lab:
        directory = tmp_path
        namespaces = dict(phone=phone, nat=nat, appl=appl, oper=oper)
        oper_interface = oper_if
        cdr = tmp_path / "cdr.log"

        def start(self, ns, name, *argv):
            proc = Proc(self.namespaces[ns], tmp_path, name, [str(bloo), *argv])
            procs.append(proc)
            return proc

        def operator(self, gateway_args=(), gatekeeper_args=()):
            gk = self.start("oper", "gatekeeper", "lab", "gatekeeper", "--ras", f"{OPER}:1719",
                            "--route", f"0={OPER}:1720", *gatekeeper_args)
            gw = self.start("oper", "gateway", "lab", "gateway", "--signalling", f"{OPER}:1720", "--tone", "2000",
                            "--expect-tone", "1000", *gateway_args)
            gk.wait_for("lab gatekeeper started")
            gw.wait_for("lab gateway started")
            return gk, gw

        def appliance(self, *extra):
            (tmp_path / "subscribers").write_text(f"alice {SECRET}\n")
            appliance = self.start("appl", "appliance", "mirror-serve", "--subscribers", str(tmp_path / "subscribers"),
                                   "--tcp", f"{APPL_IN}:7443", "--gatekeeper", f"{OPER}:1719", "--public-ip", APPL_OUT,
                                   "--bind-ip", "0.0.0.0", "--ras-ports", "40000-40009",
                                   "--signalling-ports", f"{SIGNALLING_PORTS[0]}-{SIGNALLING_PORTS[1]}",
                                   "--rtp-ports", "42000-42099", "--cdr", str(self.cdr), *extra)
            appliance.wait_for("tunnel-listening")
            return appliance

        def client(self, *extra):
            return self.start("phone", "client", "lab", "client", "--server", f"{APPL_IN}:7443", "--alias", "alice",
                              "--secret", SECRET, "--tone", "1000", "--expect-tone", "2000", *extra)

        def capture(self):
            if not shutil.which("tshark"):
                pytest.skip("tshark is not installed (scripts/deps.sh installs it)")
            pcap = tmp_path / "operator.pcap"
            proc = self.namespaces["oper"].popen("tshark", "-q", "-i", oper_if, "-w", str(pcap),
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            # dumpcap writes the file header once it captures: wait for it.
            deadline = time.time() + 20
            while time.time() < deadline and not (pcap.exists() and pcap.stat().st_size > 0):
                time.sleep(0.1)
            assert pcap.exists(), "tshark did not start capturing"
            time.sleep(0.5)
            return proc, pcap

    yield Lab()
    for proc in reversed(procs):
        proc.stop()


def released(proc, timeout=30.0):
    m = proc.wait_for(r"call released (.*)", timeout)
    return dict(re.findall(r'(\w+)=("[^"]*"|\S+)', m.group(1)))


def tshark_fields(pcap, *extra):
    decode = []
    for port in range(SIGNALLING_PORTS[0], SIGNALLING_PORTS[1] + 1):
        decode += ["-d", f"tcp.port=={port},tpkt"]
    return subprocess.run(["tshark", "-r", str(pcap), *decode, *extra], capture_output=True, text=True, check=True).stdout


def test_outbound_call_audio_dtmf_hangup_cdr_on_the_wire(lab):
    gk, gw = lab.operator(gateway_args=["--dtmf", "0123456789*#"], gatekeeper_args=["--reject-nat"])
    tshark, pcap = lab.capture()
    appliance = lab.appliance()
    client = lab.client("--call", "0123456", "--dtmf", "0123456789*#", "--hangup-after", "6000", "--cause", "16",
                        "--exit-after-calls", "1")
    # The mirror registers from its own public RAS port: even a NAT-refusing gatekeeper accepts it.
    gk.wait_for(r"registered endpoint=\S+ from=10\.77\.3\.1:4000\d aliases=alice")
    client.wait_for("call connected channel=1 codec=pcmu")
    at_client = released(client)
    at_gateway = released(gw)
    assert at_client["by"] == "local" and at_gateway["by"] == "remote"
    assert at_gateway["cause"] == "16"
    # Audio both ways: 1 kHz from the client heard at the gateway, 2 kHz the other way.
    assert float(at_gateway["tone_presence"]) >= 0.8, at_gateway
    assert int(at_client["tone_presence_pct"]) >= 80, at_client
    # DTMF both ways, every digit in order.
    assert at_gateway["digits"] == "0123456789*#"
    assert at_client["digits"] == "0123456789*#"
    gk.wait_for("disengaged")
    # One CDR line with the call's facts.
    appliance.wait_for("call-record")
    lines = lab.cdr.read_text().splitlines()
    assert len(lines) == 1
    record = dict(field.split("=", 1) for field in lines[0].split(" "))
    assert record["caller"] == "alice" and record["callee"] == "0123456" and record["direction"] == "out"
    assert record["cause"] == "16" and record["hangup_by"] == "client" and record["codec"] == "PCMU"
    assert 4.0 < float(record["duration_s"]) < 8.0
    assert int(record["pkts_to_net"]) > 100 and int(record["pkts_from_net"]) > 100
    assert record["connect"] != "-"
    time.sleep(1.0)
    tshark.send_signal(signal.SIGINT)  # dumpcap flushes what it holds
    tshark.wait(10)
    # On the operator link: H.225.0 RAS and call signalling with fast start, nothing malformed,
    # and never the phone's private address.
    summary = tshark_fields(pcap, "-Y", "h225 || h225_ras || h245")
    for message in ("CS: setup", "CS: alerting", "CS: connect", "CS: releaseComplete", "facility userInput",
                    "RAS: registrationRequest", "RAS: registrationConfirm", "RAS: admissionRequest", "RAS: admissionConfirm",
                    "RAS: disengageRequest"):
        assert message in summary, (message, summary)
    malformed = tshark_fields(pcap, "-Y", "_ws.malformed || _ws.expert.severity == error")
    assert malformed.strip() == "", malformed
    everything = tshark_fields(pcap, "-V")
    assert PHONE not in everything and NAT_OUT not in everything


def h245_ports(pcap):
    """The TCP ports that H.225.0 named as H.245 addresses (dynamic ones)."""
    fields = tshark_fields(pcap, "-Y", "h225.h245Address", "-T", "fields", "-e", "h225.h245IpPort")
    return sorted({int(port) for line in fields.split() for port in line.split(",") if port.isdigit()})


def test_separate_h245_gateway_hangs_up_busy(lab):
    gk, gw = lab.operator(gateway_args=["--h245", "separate", "--hangup-after", "4000", "--cause", "17"])
    tshark, pcap = lab.capture()
    lab.appliance("--h245", "separate")
    client = lab.client("--call", "0777", "--exit-after-calls", "1")
    client.wait_for("call connected channel=1 codec=")
    at_client = released(client)
    at_gateway = released(gw)
    assert at_gateway["by"] == "local" and at_gateway["cause"] == "17"
    assert at_client["by"] == "remote" and at_client["cause"] == "17"
    assert int(at_client["tone_presence_pct"]) >= 80 and float(at_gateway["tone_presence"]) >= 0.8
    gw.wait_for("media transmit codec=")
    record = lab.cdr.read_text().splitlines()[-1] if lab.cdr.exists() else ""
    lab_record = dict(field.split("=", 1) for field in record.split(" ")) if record else {}
    if not lab_record:
        time.sleep(1)
        lab_record = dict(field.split("=", 1) for field in lab.cdr.read_text().splitlines()[-1].split(" "))
    assert lab_record["cause"] == "17" and lab_record["hangup_by"] == "network"
    time.sleep(0.5)
    tshark.send_signal(signal.SIGINT)
    tshark.wait(10)
    # The separate H.245 connection, on the port the Setup or Connect named, decoded as
    # H.245: the capabilities, master/slave and logical channels, nothing malformed.
    ports = h245_ports(pcap)
    assert ports, tshark_fields(pcap, "-Y", "h225")
    decode_h245 = [arg for port in ports for arg in ("-d", f"tcp.port=={port},h245")]
    summary = tshark_fields(pcap, *decode_h245, "-Y", "h245")
    for message in ("terminalCapabilitySet", "masterSlaveDetermination", "openLogicalChannel", "endSessionCommand"):
        assert message in summary, (message, summary)
    malformed = tshark_fields(pcap, *decode_h245, "-Y", "_ws.malformed || _ws.expert.severity == error")
    assert malformed.strip() == "", malformed


def test_inbound_call_rings_connects_and_carries_audio(lab):
    gk, _ = lab.operator()
    lab.appliance()
    client = lab.client("--exit-after-calls", "1", "--dtmf", "159#")
    gk.wait_for("registered endpoint=.* aliases=alice")
    # A second gateway, registered with the gatekeeper, calls the client's alias.
    caller = lab.start("oper", "caller", "lab", "gateway", "--signalling", f"{OPER}:1730", "--gatekeeper", f"{OPER}:1719",
                       "--alias", "labcaller", "--call", "alice", "--tone", "2000", "--expect-tone", "1000",
                       "--h245", "tunnelled", "--hangup-after", "5000", "--cause", "16")
    client.wait_for(r"incoming call from=labcaller to=alice")
    client.wait_for("call connected channel=2")
    caller.wait_for("call ringing")
    at_client = released(client)
    at_caller = released(caller)
    assert at_client["by"] == "remote" and at_client["cause"] == "16"
    assert at_caller["digits"] == "159#"
    assert int(at_client["tone_presence_pct"]) >= 80 and float(at_caller["tone_presence"]) >= 0.8


def test_grace_expiry_releases_the_call_and_unregisters(lab):
    gk, gw = lab.operator()
    lab.appliance("--grace", "2")
    client = lab.client("--call", "0555", "--drop-after", "1500")
    client.wait_for("call connected channel=1")
    at_gateway = released(gw, timeout=20)
    # Tunnel lost beyond the grace period: destination out of order, then URQ.
    assert at_gateway["cause"] == "27" and at_gateway["by"] == "remote"
    gk.wait_for("unregistered")


def test_gatekeeper_routed_mode(lab):
    gk, gw = lab.operator(gatekeeper_args=["--mode", "routed", "--signalling", f"{OPER}:1721"])
    lab.appliance()
    client = lab.client("--call", "0999", "--hangup-after", "3000", "--cause", "16", "--exit-after-calls", "1")
    # ACF names the gatekeeper, which relays the call signalling to the gateway.
    gk.wait_for(r"admitted to=10\.77\.3\.2:1721")
    gk.wait_for(r"routed call from=10\.77\.3\.1:\d+ to=10\.77\.3\.2:1720")
    at_client = released(client)
    at_gateway = released(gw)
    assert at_gateway["cause"] == "16" and at_gateway["by"] == "remote"
    assert int(at_client["tone_presence_pct"]) >= 80 and float(at_gateway["tone_presence"]) >= 0.8


def test_early_media_ringback_reaches_the_client_before_connected(lab):
    # The gateway answers fast start in Progress and plays a 400 Hz ringback for 3 s before
    # Connect, then its 2 kHz tone: the client hears the ringback before CONNECTED. (400 Hz,
    # not 425: the ToneDetector's Goertzel bins are 50 Hz apart at 20 ms frames.)
    _, gw = lab.operator(gateway_args=["--early-media", "400", "--answer-delay", "3000"])
    appliance = lab.appliance()
    client = lab.client("--call", "0123456", "--expect-early-tone", "400", "--hangup-after", "2000", "--cause", "16",
                        "--exit-after-calls", "1")
    client.wait_for("early media channel=1 codec=pcmu ptime=20")
    connected = client.wait_for(r"call connected channel=1 codec=pcmu ptime=20 early_packets=(\d+) early_tone_presence_pct=(\d+)")
    assert int(connected.group(1)) >= 100, client.log()  # ~3 s of 20 ms packets before CONNECTED
    assert int(connected.group(2)) >= 80, client.log()
    appliance.wait_for("mirror-early-media alias=alice channel=1 codec=PCMU")
    gw.wait_for("call progress|media transmit codec=PCMU")
    at_client = released(client)
    assert at_client["cause"] == "16"
    assert int(at_client["tone_presence_pct"]) >= 80, at_client  # the 2 kHz after the answer
