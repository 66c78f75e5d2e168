import Config
import Proxy
import Testing
@testable import Daemon

@Suite struct TunnelServiceTests {
    @Test func factoryDefaultServesTLSOn443WithTheLabBackend() throws {
        let plan = TunnelService.plan(try Configuration(text: FactoryDefault.text))
        #expect(plan.listeners == ["tls-0.0.0.0:443"])
        #expect(plan.config.tlsListen?.port == 443 && plan.config.tlsListen?.address == 0)
        #expect(plan.config.tcpListen == nil)
        #expect(plan.config.certificatePath == "/data/tls/certificate.pem" && plan.config.keyPath == "/data/tls/key.pem")
        #expect(plan.mirror == nil)
        #expect(plan.problems.isEmpty)
    }

    @Test func listenersSubscribersAndWorkersComeFromTheConfiguration() throws {
        let text = FactoryDefault.text + """
            set tunnel tcp 127.0.0.1:8080
            set tunnel tcp 127.0.0.1:8081
            set tunnel tls [::1]:4443 certificate /c.pem
            set tunnel tls [::1]:4443 key /k.pem
            set subscriber alice secret alice-secret-1
            set subscriber raw secret hex:00112233445566778899
            set system cpus data 0-1

            """
        let plan = TunnelService.plan(try Configuration(text: text))
        #expect(plan.listeners == ["tls-0.0.0.0:443", "tcp-127.0.0.1:8080"])
        #expect(plan.config.tcpListen?.port == 8080 && plan.config.tcpListen?.address == 0x7F00_0001)
        #expect(plan.problems.count == 2)
        #expect(plan.problems.contains { $0.contains("[::1]:4443") })
        #expect(plan.problems.contains { $0.contains("127.0.0.1:8081") })
        #expect(plan.subscribers.secrets["alice"] == Array("alice-secret-1".utf8))
        #expect(plan.subscribers.secrets["raw"] == [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99])
        #expect(plan.config.workers == 2)
    }

    @Test func aShortSecretIsAProblemNotATrap() throws {
        let text = FactoryDefault.text + "set subscriber eve secret short\n"
        let plan = TunnelService.plan(try Configuration(text: text))
        #expect(plan.subscribers.secrets.isEmpty)
        #expect(plan.problems.contains { $0.contains("shorter than 8 bytes") })
    }

    @Test func theMirrorNeedsAGatekeeperAndAPublicAddress() throws {
        let gatekeeperOnly = FactoryDefault.text + "set gatekeeper address 192.0.2.10:1719\n"
        let lab = TunnelService.plan(try Configuration(text: gatekeeperOnly))
        #expect(lab.mirror == nil)
        #expect(lab.problems.isEmpty && lab.notes.contains { $0.contains("relay public-address") })

        let complete = gatekeeperOnly + "set relay public-address 198.51.100.7\n"
        let mirror = TunnelService.plan(try Configuration(text: complete))
        let config = try #require(mirror.mirror)
        #expect(config.gatekeeper.ip == 0xC000_020A && config.gatekeeper.port == 1719)
        #expect(config.publicIP == 0xC633_6407)
        #expect(config.rtpPorts == 20000...29999)
        #expect(mirror.problems.isEmpty)
        #expect(!mirror.config.gatekeeperVerification)

        // Unknown aliases go to the gatekeeper only when the configuration says so.
        let verifying = TunnelService.plan(try Configuration(text: complete + "set gatekeeper verifies-unknown-subscribers\n"))
        #expect(verifying.config.gatekeeperVerification)
        #expect(verifying.problems.isEmpty)
    }

    @Test func udpAudioFollowsTheConfiguration() throws {
        let standard = TunnelService.plan(try Configuration(text: FactoryDefault.text))
        #expect(standard.config.udp.enabled)
        #expect(standard.config.udp.fallbackAfterNanos == UDPUpgradeSettings().fallbackAfterNanos)
        let tuned = TunnelService.plan(try Configuration(text: FactoryDefault.text
            + "set tunnel udp-audio disable\nset tunnel udp-audio fallback-ms 2500\n"))
        #expect(!tuned.config.udp.enabled)
        #expect(tuned.config.udp.fallbackAfterNanos == 2_500_000_000)
        #expect(tuned.problems.isEmpty)
        do {
            _ = try Configuration(text: FactoryDefault.text + "set tunnel udp-audio fallback-ms 50\n")
            Issue.record("accepted a fallback below 100 ms")
        } catch {
            #expect(error.description.contains("fallback-ms"))
        }
    }

    @Test func udpLegPortsFollowTheConfiguration() throws {
        #expect(TunnelService.plan(try Configuration(text: FactoryDefault.text)).config.udp.ports == nil)
        let ranged = TunnelService.plan(try Configuration(text: FactoryDefault.text + "set tunnel udp-audio ports 31000-31099\n"))
        #expect(ranged.config.udp.ports == 31000...31099)
        let clashes = [
            "set tunnel udp-audio ports 31000-31099\nset relay ports 31050-31199\n": "overlap relay ports",
            "set tunnel tcp 127.0.0.1:31010\nset tunnel udp-audio ports 31000-31099\n": "include tunnel listener port 31010",
        ]
        for (text, reason) in clashes {
            do {
                _ = try Configuration(text: FactoryDefault.text + text)
                Issue.record("accepted: \(text)")
            } catch {
                #expect(error.description.contains(reason))
            }
        }
    }

    @Test func mediaMarkingFollowsTheConfiguration() throws {
        let standard = TunnelService.plan(try Configuration(text: FactoryDefault.text))
        #expect(standard.config.mediaDSCP == 46)  // EF
        let tuned = TunnelService.plan(try Configuration(text: FactoryDefault.text + "set relay dscp 34\n"))
        #expect(tuned.config.mediaDSCP == 34)
        let unmarked = TunnelService.plan(try Configuration(text: FactoryDefault.text + "set relay dscp 0\n"))
        #expect(unmarked.config.mediaDSCP == 0)
        for bad in ["64", "-1", "ef"] {
            do {
                _ = try Configuration(text: FactoryDefault.text + "set relay dscp \(bad)\n")
                Issue.record("accepted relay dscp \(bad)")
            } catch {
                #expect(error.description.contains("dscp"))
            }
        }
    }

    @Test func gatekeeperVerificationNeedsAGatekeeper() throws {
        do {
            _ = try Configuration(text: FactoryDefault.text + "set gatekeeper verifies-unknown-subscribers\n")
            Issue.record("accepted verification by a gatekeeper that is not configured")
        } catch {
            #expect(error.description.contains("'gatekeeper verifies-unknown-subscribers' needs 'gatekeeper address'"))
        }
    }
}
