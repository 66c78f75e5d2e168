import Config
import Testing
@testable import Daemon
import System

@Suite struct NetworkTranslationTests {
    @Test func interfacesVLANsAndRoutesBecomeSystemTypes() throws {
        let text = FactoryDefault.text + """
            set interfaces eth1 address 192.0.2.5/24
            set interfaces eth1 address 2001:db8::5/64
            set interfaces eth1 mtu 1400
            set interfaces eth1 vlan 100 address 198.51.100.1/24
            set routes default next-hop 192.0.2.1
            set routes static 203.0.113.0/24 next-hop 192.0.2.254

            """
        let spec = NetworkTranslation.spec(try Configuration(text: text))
        let eth1 = try #require(spec.interfaces.first { $0.name == "eth1" })
        #expect(eth1.mtu == 1400)
        #expect(eth1.addresses.map(\.description) == ["192.0.2.5/24", "2001:db8::5/64"])
        let vlan = try #require(spec.interfaces.first { $0.name == "eth1.100" })
        #expect(vlan.vlan == VLANSpec(parent: "eth1", id: 100))
        #expect(vlan.addresses.map(\.description) == ["198.51.100.1/24"])
        #expect(spec.routes.map(\.description).sorted() == ["203.0.113.0/24 via 192.0.2.254", "default via 192.0.2.1"])
        #expect(spec.problems().isEmpty)
    }

    @Test func crashLoopHoldOffGrows() {
        #expect(StartHistory.holdOff(unclean: 0) == 0)
        #expect(StartHistory.holdOff(unclean: 2) == 0)
        #expect(StartHistory.holdOff(unclean: 3) == 5)
        #expect(StartHistory.holdOff(unclean: 4) == 10)
        #expect(StartHistory.holdOff(unclean: 40) == 300)
    }
}
