import Testing
@testable import Config

private let sample = """
    set system hostname edge-1
    set system user admin class admin
    set system user admin password-hash \(PasswordHash.make(password: "s3cret", iterations: 1000)!)
    set system user noc class operator
    set system user noc password-hash \(PasswordHash.make(password: "look", iterations: 1000)!)
    set system service-user bloo
    set system cpus control 0
    set system cpus data 1-3
    set system logging level notice
    set interfaces eth0 mtu 1500
    set interfaces eth0 address 192.0.2.10/24
    set interfaces eth0 address 2001:db8::10/64
    set interfaces eth0 vlan 100 address 10.100.0.1/24
    set interfaces eth0 vlan 100 mtu 1496
    set interfaces eth1 disable
    set routes default next-hop 192.0.2.1
    set routes static 10.20.0.0/16 next-hop 10.100.0.254
    set tunnel tls 0.0.0.0:443 certificate /data/tls/cert.pem
    set tunnel tls 0.0.0.0:443 key /data/tls/key.pem
    set tunnel tcp 127.0.0.1:1720
    set relay ports 20000-29999
    set relay public-address 198.51.100.7
    set gatekeeper address 192.0.2.50:1719
    set subscriber alice secret "two words \\"quoted\\""

    """

@Test func sampleParsesIntoTheTypedModel() throws {
    let configuration = try Configuration(text: sample)
    #expect(configuration.hostname == "edge-1")
    #expect(configuration.users.map(\.name) == ["admin", "noc"])
    #expect(configuration.users[1].loginClass == .operator)
    #expect(configuration.controlCPUs?.cpus == [0])
    #expect(configuration.dataCPUs?.cpus == [1, 2, 3])
    #expect(configuration.logLevel == "notice")
    #expect(configuration.interfaces.count == 2)
    #expect(configuration.interfaces[0].addresses.map(\.description) == ["192.0.2.10/24", "2001:db8::10/64"])
    #expect(configuration.interfaces[0].vlans.first?.deviceName == "eth0.100")
    #expect(configuration.interfaces[0].vlans.first?.mtu == 1496)
    #expect(configuration.interfaces[1].enabled == false)
    #expect(configuration.routes.map(\.destination.description) == ["0.0.0.0/0", "10.20.0.0/16"])
    #expect(configuration.tlsListeners.first?.keyPath == "/data/tls/key.pem")
    #expect(configuration.tcpListeners.map(\.port) == [1720])
    #expect(configuration.relayPorts == PortRange("20000-29999"))
    #expect(configuration.gatekeeper?.description == "192.0.2.50:1719")
    #expect(configuration.subscribers.first?.secret == "two words \"quoted\"")
}

@Test func printedTextParsesBackToTheSameConfiguration() throws {
    let configuration = try Configuration(text: sample)
    let reparsed = try Configuration(text: configuration.text)
    #expect(reparsed == configuration)
    #expect(reparsed.text == configuration.text)
    #expect(configuration.text.contains("set subscriber alice secret \"two words \\\"quoted\\\"\"\n"))
}

@Test func factoryDefaultIsValidAndRoundTrips() throws {
    let configuration = try Configuration(text: FactoryDefault.text)
    #expect(configuration.users.first?.loginClass == .admin)
    #expect(PasswordHash.verify(password: "bloophone", hash: configuration.users[0].passwordHash))
    #expect(try Configuration(text: configuration.text) == configuration)
}

@Test func parseErrorsNameTheLineAndWhatWasExpected() {
    let text = """
        set system hostname ok
        set sytem hostname x
        set interfaces eth0 mtu 20
        set interfaces eth0 address 300.1.1.1/24
        show me
        set relay ports 30000-20000
        set tunnel tls 0.0.0.0:443
        """
    do {
        _ = try ConfigTree(parsing: text)
        Issue.record("accepted a bad configuration")
    } catch {
        let lines = error.errors.compactMap(\.line)
        #expect(lines == [2, 3, 4, 5, 6, 7])
        #expect(error.errors[0].message.contains("unknown word 'sytem'"))
        #expect(error.errors[0].message.contains("expected one of: system, interfaces"))
        #expect(error.errors[1].message.contains("expected a number in 68-9000"))
        #expect(error.errors[2].message.contains("expected address/length"))
        #expect(error.errors[3].message.contains("expected 'set'"))
        #expect(error.errors[4].message.contains("port range"))
        #expect(error.errors[5].message.contains("expected one of: certificate, key"))
    }
}

@Test func semanticErrorsPointAtTheStatement() {
    let text = """
        set system hostname box
        set system user admin class operator
        set system user admin password-hash \(PasswordHash.make(password: "x", iterations: 1000)!)
        set system cpus control 0-1
        set system cpus data 1-2
        set interfaces eth0 address 192.0.2.1/24
        set interfaces eth1 address 192.0.2.1/25
        set tunnel tls 0.0.0.0:443 certificate /c.pem
        """
    do {
        _ = try Configuration(text: text)
        Issue.record("accepted a configuration without an admin")
    } catch {
        let messages = error.description
        #expect(messages.contains("line 5: control and data CPU lists overlap"))
        #expect(messages.contains("line 7: address 192.0.2.1 is on both eth0 and eth1"))
        #expect(messages.contains("line 8: TLS listener 0.0.0.0:443: missing 'key <path>'"))
        #expect(messages.contains("no user of class admin"))
    }
}

@Test func listEntryWithoutItsSettingsIsIncomplete() {
    var tree = ConfigTree()
    #expect(throws: ConfigError.self) { try tree.set(["subscriber", "bob"]) }
}

@Test func abbreviationsExpandAndAmbiguityIsReported() throws {
    var tree = ConfigTree()
    try tree.set(["sys", "host", "Edge"])
    #expect(tree.text == "set system hostname edge\n")
    do {
        try tree.set(["routes", "s", "10.0.0.0/8", "next-hop", "10.1.1.1"])
        try tree.set(["r", "ports", "2000-3000"])
        Issue.record("ambiguous word accepted")
    } catch {
        #expect(error.message.contains("'r' is ambiguous"))
        #expect(error.message.contains("could be routes, relay"))
    }
    try tree.set(["int", "eth0", "vl", "5", "mtu", "1400"])
    #expect(tree.value(["interfaces", "eth0", "vlan", "5", "mtu"]) == "1400")
}

@Test func setReplacesLeavesAndKeepsGroupsTogether() throws {
    var tree = ConfigTree()
    try tree.set(["interfaces", "eth0", "mtu", "1500"])
    try tree.set(["system", "hostname", "a"])
    try tree.set(["interfaces", "eth0", "address", "192.0.2.1/24"])
    try tree.set(["interfaces", "eth0", "mtu", "9000"])
    try tree.set(["interfaces", "eth0", "address", "2001:DB8:0:0::1/64"])
    #expect(tree.text == """
        set interfaces eth0 mtu 9000
        set interfaces eth0 address 192.0.2.1/24
        set interfaces eth0 address 2001:db8::1/64
        set system hostname a

        """)
}

@Test func deleteRemovesSubtreesAndRefusesWhatIsAbsent() throws {
    var tree = try ConfigTree(parsing: sample)
    #expect(try tree.delete(["interfaces", "eth0", "vlan"]) == 2)
    #expect(try tree.delete(["interfaces", "eth0", "address", "2001:db8:0::10/64"]) == 1)
    #expect(try tree.delete(["system", "hostname"]) == 1)
    #expect(throws: ConfigError.self) { try tree.delete(["system", "hostname"]) }
    #expect(throws: ConfigError.self) { try tree.delete(["gatekeeper", "address", "192.0.2.51:1719"]) }
    #expect(tree.statements(under: ["interfaces", "eth0"]).map(\.description)
            == ["set interfaces eth0 mtu 1500", "set interfaces eth0 address 192.0.2.10/24"])
}

@Test func hostileTextIsRejectedWithoutTrapping() {
    let inputs = ["set system hostname \u{1b}[2J", "set subscriber a secret \"unterminated",
                  "set interfaces eth0 mtu 99999999999999999999", "set relay ports 1-",
                  "set routes static 10.0.0.1/8 next-hop 10.0.0.1", "set interfaces eth0 address ::1/129",
                  "set tunnel tcp [::1]:0", "set system cpus data 5-1", String(repeating: "set ", count: 10_000)]
    for input in inputs {
        #expect(throws: ConfigErrors.self) { try ConfigTree(parsing: input) }
    }
}

@Test func valuesAreCanonical() {
    #expect(ValueKind.ipAddress.canonical("2001:0DB8:0000:0000:0000:0000:0000:0001") == .success("2001:db8::1"))
    #expect(ValueKind.ipAddress.canonical("1:0:0:1:0:0:0:1") == .success("1:0:0:1::1"))
    #expect(ValueKind.socketAddress.canonical("[::]:443") == .success("[::]:443"))
    #expect(ValueKind.cpuList.canonical("3,1-2,2") == .success("1-3"))
    #expect(ValueKind.ipv4Address.canonical("010.0.0.1") != .success("10.0.0.1"))
    #expect(ValueKind.ipNetwork.canonical("10.0.0.0/8") == .success("10.0.0.0/8"))
}

@Test func passwordHashesVerifyAndAreSalted() throws {
    let first = try #require(PasswordHash.make(password: "correct horse", iterations: 1000))
    let second = try #require(PasswordHash.make(password: "correct horse", iterations: 1000))
    #expect(first != second)
    #expect(!first.contains("correct"))
    #expect(PasswordHash.verify(password: "correct horse", hash: first))
    #expect(!PasswordHash.verify(password: "correct hors", hash: first))
    #expect(!PasswordHash.verify(password: "x", hash: "pbkdf2-sha256$1000$zz$00"))
    #expect(!PasswordHash.isWellFormed("pbkdf2-sha256$999999999$00112233445566778899$00"))
}
