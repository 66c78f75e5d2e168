import Glibc
import Testing
@testable import Config

private let base = """
    set system hostname lab-box
    set system user admin class admin
    set system user admin password-hash \(PasswordHash.make(password: "x", iterations: 1000)!)
    set relay ports 20000-29999

    """

@Test func labToolsAreReadWithTheirDefaults() throws {
    let configuration = try Configuration(text: base + """
        set lab gatekeeper ras 127.0.0.1:1719
        set lab gateway signalling 127.0.0.1:1720
        set lab gateway media-ports 16000-16099
        """)
    #expect(configuration.labGatekeeper == Configuration.LabGatekeeper(ras: SocketAddress("127.0.0.1:1719")!))
    let gateway = try #require(configuration.labGateway)
    #expect(gateway.signalling == SocketAddress("127.0.0.1:1720")!)
    #expect(gateway.mediaPorts == PortRange("16000-16099")!)
    #expect(gateway.toneHz == 2000 && gateway.expectToneHz == 1000)
}

@Test func labToolsAreOffUnlessConfigured() throws {
    let configuration = try Configuration(text: base)
    #expect(configuration.labGatekeeper == nil && configuration.labGateway == nil)
}

@Test func labToolsListenOnTheLoopbackOnlyAndKeepOutOfTheRelayPorts() {
    let text = base + """
        set lab gatekeeper ras 0.0.0.0:1719
        set lab gateway signalling 10.0.2.15:1720
        set lab gateway media-ports 29000-30999
        """
    do {
        _ = try Configuration(text: text)
        Issue.record("accepted lab tools off the loopback")
    } catch {
        let messages = error.description
        #expect(messages.contains("line 5: lab gatekeeper ras 0.0.0.0:1719: lab tools listen on the loopback (127.0.0.0/8) only"))
        #expect(messages.contains("line 6: lab gateway signalling 10.0.2.15:1720: lab tools listen on the loopback"))
    }
    do {
        _ = try Configuration(text: base + "set lab gateway signalling 127.0.0.1:1720\nset lab gateway media-ports 29000-30999\n")
        Issue.record("accepted media ports inside the relay's")
    } catch {
        #expect(error.description.contains("line 6: lab gateway media-ports 29000-30999 overlap relay ports 20000-29999"))
    }
    do {
        _ = try Configuration(text: base + "set lab gateway signalling 127.0.0.1:1720\n")
        Issue.record("accepted a lab gateway without media ports")
    } catch {
        #expect(error.description.contains("line 5: lab gateway: missing 'media-ports <low-high>'"))
    }
}

@Test func labToneIsARangeCheckedInteger() {
    var tree = ConfigTree()
    #expect(throws: ConfigError.self) { try tree.set(["lab", "gateway", "tone", "5000"]) }
    #expect(throws: ConfigError.self) { try tree.set(["lab", "gatekeeper", "ras", "127.0.0.1"]) }
}

/// The qemu board's first commit must be a configuration the daemon accepts.
@Test func theBoardConfigurationIsValidAndRunsTheDemoLab() throws {
    let path = String(#filePath).split(separator: "/").dropLast(3).joined(separator: "/")
    let file = "/" + path + "/board/qemu-x86_64/bloo.conf"
    let text = try #require(readText(file))
    let configuration = try Configuration(text: text)
    #expect(configuration.gatekeeper == configuration.labGatekeeper?.ras)
    #expect(configuration.labGateway?.signalling == SocketAddress("127.0.0.1:1720")!)
    #expect(configuration.subscribers.map(\.alias) == ["demo"])
}

private func readText(_ path: String) -> String? {
    guard let file = fopen(path, "r") else { return nil }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = fread(&buffer, 1, buffer.count, file)
        if count <= 0 { break }
        bytes += buffer[0..<count]
    }
    return String(decoding: bytes, as: UTF8.self)
}
