"""An independent client of the bloo/1 tunnel protocol, written from
docs/tunnel-protocol.md (not from the Swift code): the system tests use it to
check that the document and the appliance agree."""
import hashlib
import hmac
import os
import socket
import ssl
import struct
import time

VERSION = 1
HEADER = struct.Struct(">BBHI")  # framing version, type, channel, payload length

HELLO, WELCOME, AUTH, AUTH_OK, RESUME, AUTH_DEFER = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
REGISTER, REGISTERED, REJECTED, UNREGISTER, CREDENTIALS = 0x10, 0x11, 0x12, 0x13, 0x14
H235_MD5 = 1
CALL, INCOMING, PROGRESS, RINGING, ANSWER, CONNECTED, HANGUP, DTMF = range(0x20, 0x28)
MEDIA, PING, PONG, ERROR, BYE = 0x30, 0x40, 0x41, 0x50, 0x51
PCMU, PCMA = 0, 8

E_MALFORMED, E_VERSION, E_TOO_LARGE, E_UNEXPECTED = 100, 101, 102, 103
E_AUTH_FAILED, E_AUTH_TIMEOUT, E_RESUME_REFUSED = 200, 201, 202
E_OVERLOADED, E_RATE_LIMITED = 300, 301


def frame(ftype, payload=b"", channel=0):
    return HEADER.pack(VERSION, ftype, channel, len(payload)) + payload


def string(text):
    data = text.encode()
    return bytes([len(data)]) + data


class Closed(Exception):
    pass


def tls_context(ca_file, alpn=("bloo/1",)):
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


class TunnelClient:
    """One connection. `tls_ca` given: TLS to `server_name`; otherwise plain TCP."""

    def __init__(self, endpoint, tls_ca=None, server_name="localhost", timeout=5.0, context=None, receive_buffer=None):
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        raw.settimeout(timeout)
        raw.connect(endpoint)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls_ca or context:
            context = context or tls_context(tls_ca)
            self.sock = context.wrap_socket(raw, server_hostname=server_name)
        else:
            self.sock = raw
        self.buffer = b""
        self.token = None
        self.grace = None
        self.resumed = None

    def send(self, ftype, payload=b"", channel=0):
        self.sock.sendall(frame(ftype, payload, channel))

    def send_raw(self, data):
        self.sock.sendall(data)

    def _fill(self, count):
        while len(self.buffer) < count:
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError) as error:
                raise Closed(str(error))
            if not data:
                raise Closed("end of stream")
            self.buffer += data

    def receive(self):
        """Next frame as (type, channel, payload)."""
        self._fill(HEADER.size)
        version, ftype, channel, length = HEADER.unpack(self.buffer[:HEADER.size])
        assert version == VERSION, f"framing version {version}"
        self._fill(HEADER.size + length)
        payload = self.buffer[HEADER.size:HEADER.size + length]
        self.buffer = self.buffer[HEADER.size + length:]
        return ftype, channel, payload

    def receive_type(self, wanted, skip=(MEDIA, PONG)):
        while True:
            ftype, channel, payload = self.receive()
            if ftype == wanted:
                return channel, payload
            if ftype == ERROR:
                raise AssertionError(f"ERROR {parse_error(payload)} while waiting for 0x{wanted:02x}")
            if ftype not in skip:
                raise AssertionError(f"got 0x{ftype:02x} while waiting for 0x{wanted:02x}")

    def expect_error_and_close(self):
        """Reads until ERROR, returns (code, text), then checks the appliance closes."""
        while True:
            ftype, _, payload = self.receive()
            if ftype == ERROR:
                result = parse_error(payload)
                break
        try:
            self._fill(len(self.buffer) + 1)
            raise AssertionError("connection still open after ERROR")
        except Closed:
            pass
        return result

    def handshake(self, alias, secret, token=None, capabilities=0xF):
        self.send(HELLO, struct.pack(">HHI", 1, 1, capabilities) + string("pytest"))
        _, payload = self.receive_type(WELCOME)
        version, caps, max_payload = struct.unpack(">HII", payload[:10])
        server_nonce = payload[10:42]
        self.version, self.max_payload = version, max_payload
        client_nonce = os.urandom(32)
        if token is not None:
            mac = hmac.new(secret, b"bloo/1 resume\0" + server_nonce + client_nonce + token + alias.encode(),
                           hashlib.sha256).digest()
            self.send(RESUME, string(alias) + token + client_nonce + mac)
            ftype, _, payload = self.receive()
            if ftype == ERROR:
                code, text = parse_error(payload)
                assert code == E_RESUME_REFUSED, (code, text)
                self.resume_refused = True
                token = None
                client_nonce = os.urandom(32)
            else:
                self.buffer = frame(ftype, payload) + self.buffer
        if token is None:
            mac = hmac.new(secret, b"bloo/1 client-auth\0" + server_nonce + client_nonce + alias.encode(),
                           hashlib.sha256).digest()
            self.send(AUTH, string(alias) + client_nonce + mac)
        _, payload = self.receive_type(AUTH_OK)
        proof, self.token = payload[:32], payload[32:48]
        self.grace, resumed = struct.unpack(">HB", payload[48:51])
        self.resumed = bool(resumed)
        expected = hmac.new(secret, b"bloo/1 server-proof\0" + client_nonce + server_nonce, hashlib.sha256).digest()
        assert hmac.compare_digest(proof, expected), "appliance failed to prove it knows the secret"
        return self

    def ping(self):
        sent = int(time.monotonic() * 1e6)
        self.send(PING, struct.pack(">Q", sent))
        _, payload = self.receive_type(PONG, skip=(MEDIA,))
        echoed, server_time, calls, capacity = struct.unpack(">QQII", payload[:24])
        assert echoed == sent
        return calls, capacity

    def handshake_gatekeeper(self, alias, secret, time_stamp=None):
        """AUTH for an alias the appliance leaves to the operator's gatekeeper (§4.1):
        AUTH_DEFER, CREDENTIALS with the H.235 MD5 password hash, REGISTER. Returns
        ("registered", aliases payload) or ("rejected", reason, text) (ERROR 200 then closes)."""
        self.send(HELLO, struct.pack(">HHI", 1, 1, 0xF) + string("pytest"))
        _, payload = self.receive_type(WELCOME)
        server_nonce = payload[10:42]
        client_nonce = os.urandom(32)
        mac = hmac.new(secret, b"bloo/1 client-auth\0" + server_nonce + client_nonce + alias.encode(), hashlib.sha256).digest()
        self.send(AUTH, string(alias) + client_nonce + mac)
        _, payload = self.receive_type(AUTH_DEFER)
        assert payload[0] == H235_MD5, payload
        time_stamp = time_stamp or int(time.time())
        digest = hashlib.md5(h235_clear_token(alias, secret.decode(), time_stamp)).digest()
        self.send(CREDENTIALS, bytes([H235_MD5]) + struct.pack(">I", time_stamp) + digest)
        self.send(REGISTER, bytes([1]) + string(alias))
        ftype, _, payload = self.receive()
        if ftype == REJECTED:
            reason = struct.unpack(">H", payload[:2])[0]
            return "rejected", reason, payload[3:3 + payload[2]].decode()
        assert ftype == AUTH_OK, f"got 0x{ftype:02x}"
        assert payload[:32] == bytes(32), "a deferring appliance has no proof to give"
        self.token = payload[32:48]
        self.grace, resumed = struct.unpack(">HB", payload[48:51])
        _, registered = self.receive_type(REGISTERED)
        return "registered", registered

    def register(self, *aliases):
        self.send(REGISTER, bytes([len(aliases)]) + b"".join(string(a) for a in aliases))
        _, payload = self.receive_type(REGISTERED)
        return payload

    def call(self, channel, destination, codecs=(PCMU,)):
        self.send(CALL, string(destination) + bytes([len(codecs)]) + bytes(codecs), channel)
        while True:
            ftype, ch, payload = self.receive()
            if ftype == CONNECTED and ch == channel:
                return payload[0], payload[1]
            if ftype == HANGUP and ch == channel:
                raise AssertionError(f"call refused, cause {payload[0]}")
            if ftype == ERROR:
                raise AssertionError(f"ERROR {parse_error(payload)}")

    def media(self, channel, packet, kind=0):
        self.send(MEDIA, bytes([kind]) + packet, channel)

    def receive_media(self):
        channel, payload = self.receive_type(MEDIA, skip=(PONG, RINGING, PROGRESS))
        return channel, payload[0], payload[1:]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def h235_clear_token(alias, password, time_stamp):
    """ALIGNED PER of ClearToken{tokenOID 0.0, timeStamp, password, generalID} (§4.1), by
    hand for this one shape: the preamble (no extension; timeStamp, password and generalID
    present), OID 0.0, timeStamp as 4 octets of value - 1 after a 2-bit length (11), then each
    BMPString (SIZE 1..128) as 7 bits of length - 1, one pad bit and UCS-2 characters; the
    alias and password each end with one NUL character."""
    def bmp(text):
        text += "\0"
        assert 1 <= len(text) <= 128
        return bytes([(len(text) - 1) << 1]) + text.encode("utf-16-be")
    assert 2 ** 24 < time_stamp < 2 ** 32
    return bytes([0x61, 0x00, 0x01, 0x00, 0xC0]) + struct.pack(">I", time_stamp - 1) + bmp(password) + bmp(alias)


def parse_error(payload):
    code = struct.unpack(">H", payload[:2])[0]
    length = payload[2]
    return code, payload[3:3 + length].decode()


def rtp_packet(sequence, ssrc=0x1234, payload_type=PCMU, size=160):
    return struct.pack(">BBHII", 0x80, payload_type, sequence & 0xFFFF, sequence * 160 & 0xFFFFFFFF, ssrc) + bytes(size)
