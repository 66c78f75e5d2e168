// CallDriver with two real H.323 calls over TCP on 127.0.0.1, one event loop: the
// signalling and separate H.245 connections, the deadline timer, and the first-packet
// Setup check of an accepted connection.
import Endpoint
import EndpointIO
import H323
import IO
import Testing

@Suite struct CallDriverTests {
    static let loopback: UInt32 = 0x7F00_0001
    static let callerRTP = EndpointAddress(ip: loopback, port: 31_000)
    static let calleeRTP = EndpointAddress(ip: loopback, port: 31_002)

    /// What an owner sees of its call: the actions left to it. On `.released` it closes
    /// the driver, as the gateway, the mirror and the phone do.
    final class Owner {
        var driver: CallDriver?
        var actions: [CallAction] = []

        func adopt(_ driver: CallDriver) {
            self.driver = driver
            driver.onAction = { [unowned self] action in
                self.actions.append(action)
                if case .released = action { self.driver?.close() }
            }
        }

        var released: CallAction? { actions.first { if case .released = $0 { true } else { false } } }
        var transmit: MediaChannel? {
            for case .transmit(let channel) in actions { return channel }
            return nil
        }
    }

    static func outgoingCall(options: CallOptions, timers: CallTimers = CallTimers()) -> H323Call {
        let guid = [UInt8](repeating: 0x5A, count: 16)
        let info = OutgoingCallInfo(callReference: 7, callIdentifier: guid, conferenceID: guid, source: [.h323ID("caller")],
                                    destination: [.h323ID("callee")])
        return H323Call(outgoing: info, codecs: [.pcmu], localRTP: callerRTP, options: options, timers: timers)
    }

    static func run(_ loop: EventLoop, until done: () -> Bool) throws {
        let end = millisecondsNow() + 10_000
        while !done() && millisecondsNow() < end { _ = try loop.runOnce(timeoutMilliseconds: 20) }
    }

    @Test func callWithSeparateH245ConnectsAndHangsUp() throws {
        let loop = try EventLoop()
        let listener = try TCPListener(loop: loop, address: EndpointAddress(ip: Self.loopback, port: 0))
        let h245Listener = try TCPListener(loop: loop, address: EndpointAddress(ip: Self.loopback, port: 0))
        defer { listener.close() }
        let callee = Owner()
        listener.onAccept = { socket, from in
            TPKTConnection.awaitingSetup(loop: loop, socket: socket, from: from) { setup, connection in
                let options = CallOptions(fastStart: false, tunnelling: false, h245Listen: h245Listener.address)
                guard let call = try? H323Call(incoming: setup, localRTP: Self.calleeRTP, acceptable: [.pcmu], options: options) else {
                    return connection.close()
                }
                let driver = CallDriver(loop: loop, call: call)
                callee.adopt(driver)
                driver.acceptH245(on: h245Listener)
                driver.attachSignalling(connection)
                driver.event(.proceed)
                driver.event(.answer(codecs: [.pcmu]))
            }
        }
        let caller = Owner()
        let driver = CallDriver(loop: loop, call: Self.outgoingCall(options: CallOptions(fastStart: false, tunnelling: false)))
        caller.adopt(driver)
        #expect(driver.place(to: listener.address))

        // Without fast start or tunnelling, media is negotiated only over the separate H.245 connection.
        try Self.run(loop) { caller.transmit != nil && callee.transmit != nil && caller.actions.contains(.connected) }
        #expect(caller.transmit?.remoteRTP == Self.calleeRTP)
        #expect(callee.transmit?.remoteRTP == Self.callerRTP)
        #expect(driver.h245 != nil && callee.driver?.h245 != nil)
        #expect(driver.call?.state == .active)

        driver.event(.hangup(cause: Q850.normalClearing))
        try Self.run(loop) { callee.released != nil }
        #expect(caller.released == .released(cause: Q850.normalClearing, byRemote: false))
        #expect(callee.released == .released(cause: Q850.normalClearing, byRemote: true))
        #expect(driver.isClosed && driver.signalling?.isClosed == true && driver.h245 == nil)
        #expect(callee.driver?.isClosed == true)
        // The connections are the driver's: their actions never reach an owner.
        for actions in [caller.actions, callee.actions] {
            #expect(!actions.contains { action in
                switch action {
                case .sendSignalling, .sendH245, .connectH245: true
                default: false
                }
            })
        }
    }

    @Test func unansweredSetupIsReleasedByTheDeadlineTimer() throws {
        let loop = try EventLoop()
        let listener = try TCPListener(loop: loop, address: EndpointAddress(ip: Self.loopback, port: 0))
        var silent: [TCPSocket] = []
        listener.onAccept = { socket, _ in silent.append(socket) }
        defer {
            for socket in silent { socket.close() }
            listener.close()
        }
        var timers = CallTimers()
        timers.t303 = 150
        let caller = Owner()
        let driver = CallDriver(loop: loop, call: Self.outgoingCall(options: CallOptions(), timers: timers))
        caller.adopt(driver)
        let start = millisecondsNow()
        #expect(driver.place(to: listener.address))
        try Self.run(loop) { caller.released != nil }
        #expect(caller.released == .released(cause: Q850.noUserResponding, byRemote: false))  // T303
        #expect(millisecondsNow() - start >= 150)
        #expect(silent.count == 1)
    }

    @Test func noDestinationIsNoRoute() throws {
        let loop = try EventLoop()
        let driver = CallDriver(loop: loop, call: Self.outgoingCall(options: CallOptions()))
        #expect(!driver.place(to: nil))
        #expect(driver.signalling == nil && driver.call?.state == .null)
    }

    @Test func acceptedConnectionMustStartWithASetup() throws {
        let loop = try EventLoop()
        let listener = try TCPListener(loop: loop, address: EndpointAddress(ip: Self.loopback, port: 0))
        defer { listener.close() }
        var setups: [TPKTConnection] = []
        listener.onAccept = { socket, from in
            TPKTConnection.awaitingSetup(loop: loop, socket: socket, from: from) { _, connection in setups.append(connection) }
        }
        // A Connect first: the connection is closed and no call starts.
        let stranger = try TPKTConnection.connect(loop: loop, to: listener.address)
        var strangerClosed = false
        stranger.onClose = { _ in strangerClosed = true }
        let connect = Q931Message(callReference: Q931CallReference(value: 3), messageType: .connect)
        stranger.send(packet: try connect.encoded())
        try Self.run(loop) { strangerClosed }
        #expect(strangerClosed && setups.isEmpty)

        // A Setup first: handed over once, the connection stays open.
        var call = Self.outgoingCall(options: CallOptions())
        guard case .sendSignalling(let setup)? = call.handle(.place, now: millisecondsNow()).first else {
            Issue.record("the call sent no Setup")
            return
        }
        let caller = try TPKTConnection.connect(loop: loop, to: listener.address)
        caller.send(packet: try setup.encoded())
        caller.send(packet: try setup.encoded())
        try Self.run(loop) { !setups.isEmpty }
        for _ in 0..<5 { _ = try loop.runOnce(timeoutMilliseconds: 20) }
        #expect(setups.count == 1 && setups.first?.isClosed == false && !caller.isClosed)
        caller.close()
        for connection in setups { connection.close() }
    }
}
