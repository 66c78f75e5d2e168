// One client connection to an appliance: non-blocking TCP, optionally TLS with
// the CA and host name checked, carrying tunnel frames. No protocol state: the
// session above decides what to send. Driven by poll (the scanner) or by the
// phone's epoll loop; `pump()` does whatever the socket allows now.
import Glibc
import IO
import Tunnel

final class TunnelStream {
    enum Status: Equatable {
        case connecting
        case open
        case closed(String)
    }

    let appliance: Appliance
    let socket: TCPSocket
    private let tls: TLSEngine?
    private var tcpConnected = false
    private var plaintextOut: [UInt8] = []
    private var wireOut: [UInt8] = []
    private var decoder = FrameDecoder(maxPayload: 64 * 1024)
    private var scratch = [UInt8](repeating: 0, count: 16 * 1024)
    private(set) var status: Status = .connecting
    private(set) var incoming: [Frame] = []

    init(appliance: Appliance, tlsContext: TLSContext?) throws {
        self.appliance = appliance
        if appliance.transport == .tls {
            guard let tlsContext else { throw PhoneError.configuration("\(appliance) needs a CA file (--ca) to verify it") }
            tls = try TLSEngine(context: tlsContext, serverName: appliance.serverName ?? appliance.endpoint.addressText)
        } else {
            tls = nil
        }
        socket = try TCPSocket.connecting(to: appliance.endpoint)
        try? socket.setNoDelay()
    }

    deinit { socket.close() }

    var isOpen: Bool { status == .open }
    var wantsWrite: Bool { !tcpConnected || !wireOut.isEmpty || (tls?.pendingCiphertext ?? 0) > 0 }

    func send(_ frame: Frame) { frame.encode(into: &plaintextOut) }
    func send(_ message: Message, channel: UInt16 = 0) { send(message.frame(channel: channel)) }

    /// Takes the frames received so far.
    func takeFrames() -> [Frame] {
        defer { incoming.removeAll(keepingCapacity: true) }
        return incoming
    }

    func close(_ reason: String) {
        if case .closed = status { return }
        status = .closed(reason)
    }

    /// Moves bytes both ways as far as possible without blocking.
    func pump() {
        if case .closed = status { return }
        if !tcpConnected {
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            _ = getsockopt(socket.fd, SOL_SOCKET, SO_ERROR, &error, &length)
            if error != 0 { return close("cannot connect to \(appliance.endpoint): \(String(cString: strerror(error)))") }
            var pfd = pollfd(fd: socket.fd, events: Int16(POLLOUT), revents: 0)
            guard poll(&pfd, 1, 0) == 1, pfd.revents & Int16(POLLOUT) != 0 else { return }
            _ = getsockopt(socket.fd, SOL_SOCKET, SO_ERROR, &error, &length)
            if error != 0 { return close("cannot connect to \(appliance.endpoint): \(String(cString: strerror(error)))") }
            tcpConnected = true
            if tls == nil { status = .open }
        }
        readSocket()
        if case .closed = status { return }
        if let tls {
            switch tls.advance() {
            case .handshaking: break
            case .established:
                if status == .connecting { status = .open }
                if !plaintextOut.isEmpty {
                    guard tls.write(plaintextOut) else { return close("TLS write failed") }
                    plaintextOut.removeAll(keepingCapacity: true)
                }
            case .closed: return close("the appliance closed the TLS session")
            case let .failed(reason): return close("TLS with \(appliance) failed: \(reason)")
            }
            tls.takeCiphertext(appendingTo: &wireOut)
        } else if !plaintextOut.isEmpty {
            wireOut.append(contentsOf: plaintextOut)
            plaintextOut.removeAll(keepingCapacity: true)
        }
        writeSocket()
    }

    private func readSocket() {
        while true {
            let result = scratch.withUnsafeMutableBytes { socket.read(into: $0) }
            switch result {
            case let .bytes(count):
                if let tls {
                    scratch.withUnsafeBytes { tls.feed(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                    if tls.advance() == .established || tls.status == .established {
                        drainTLS(tls)
                    }
                } else {
                    decoder.feed(scratch[0..<count])
                }
                decodeFrames()
            case .wouldBlock:
                return
            case .endOfStream:
                decodeFrames()
                return close("the appliance closed the connection")
            case let .failed(code):
                return close("connection to \(appliance.endpoint) failed: \(String(cString: strerror(code)))")
            }
            if case .closed = status { return }
        }
    }

    private func drainTLS(_ tls: TLSEngine) {
        var plain = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = plain.withUnsafeMutableBytes { tls.read(into: $0) }
            if count == 0 { break }
            decoder.feed(plain[0..<count])
        }
        if tls.status == .closed { close("the appliance closed the TLS session") }
    }

    private func decodeFrames() {
        while let next = decoder.next() {
            switch next {
            case let .success(frame): incoming.append(frame)
            case let .failure(error): return close("bad frame from the appliance: \(error)")
            }
        }
    }

    private func writeSocket() {
        guard tcpConnected, !wireOut.isEmpty else { return }
        let written = wireOut.withUnsafeBytes { socket.write($0) }
        if written < 0 { return close("connection to \(appliance.endpoint) broke: \(String(cString: strerror(Int32(-written))))") }
        if written > 0 { wireOut.removeFirst(written) }
    }
}

public enum PhoneError: Error, CustomStringConvertible, Equatable {
    case configuration(String)
    case noAppliance(String)
    case failed(String)

    public var description: String {
        switch self {
        case let .configuration(text): "configuration: \(text)"
        case let .noAppliance(text): "no appliance reachable: \(text)"
        case let .failed(text): text
        }
    }
}

/// The UDP probe (docs/tunnel-protocol.md §7), client side.
enum ProbeWire {
    static let magic: [UInt8] = [UInt8(ascii: "B"), UInt8(ascii: "L"), UInt8(ascii: "P"), 1]

    static func request(clientMicros: UInt64) -> [UInt8] {
        var bytes = magic + [1, 0, 0, 0]
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: clientMicros >> UInt64(shift))) }
        bytes += [UInt8](repeating: 0, count: 32 - bytes.count)
        return bytes
    }

    /// (echoed client time, active calls, capacity) of a valid reply.
    static func reply(_ bytes: ArraySlice<UInt8>) -> (clientMicros: UInt64, active: UInt32, capacity: UInt32)? {
        var reader = WireReader(bytes)
        guard let head = reader.raw(4), head == magic, reader.u8() == 2, reader.raw(3) != nil,
              let echoed = reader.u64(), reader.u64() != nil, let active = reader.u32(), let capacity = reader.u32()
        else { return nil }
        return (echoed, active, capacity)
    }
}

func nowMicros() -> UInt64 { monotonicNanoseconds() / 1_000 }
