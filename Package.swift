// swift-tools-version:6.0
// The Bloophone ProxyServer firmware: one static multi-call binary, `bloo`.
// Modules and why they are split this way: docs/architecture.md.
// Dependencies point downwards only: C surface -> wire/protocol -> I/O and data
// plane -> services -> the executable.
import PackageDescription

let package = Package(
    name: "bloo",
    products: [
        .executable(name: "bloo", targets: ["bloo"]),
    ],
    targets: [
        // MARK: C surface (no Swift knowledge)
        .target(name: "CSystem"),
        // finit_module for bloo init; a header without includes (see CBoot.h).
        .target(name: "CBoot"),
        .systemLibrary(name: "CNetlink", pkgConfig: "libnl-route-3.0",
                       providers: [.apt(["libnl-3-dev", "libnl-route-3-dev"])]),
        .systemLibrary(name: "CCap", pkgConfig: "libcap", providers: [.apt(["libcap-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),

        // MARK: Shared by every layer
        .target(name: "Log"),

        // MARK: Wire formats and protocol state machines (sans-I/O)
        .target(name: "PER"),
        .target(name: "H323", dependencies: ["PER"]),
        .target(name: "RTP"),
        .target(name: "Hex"),
        .target(name: "Tunnel", dependencies: ["Hex"]),
        .target(name: "Control", dependencies: ["Log"]),
        .target(name: "Endpoint", dependencies: ["H323", "RTP", "Log"]),

        // MARK: I/O drivers and the data plane
        .target(name: "IO", dependencies: ["CSystem", "COpenSSL", "Log"]),
        .target(name: "Relay", dependencies: ["IO", "RTP", "CSystem", "Log"]),

        // MARK: Appliance services
        .target(name: "Config", dependencies: ["COpenSSL", "Hex", "Log"]),
        .target(name: "System", dependencies: ["CSystem", "CNetlink", "CCap", "Log"]),
        .target(name: "Update", dependencies: ["CBoot", "COpenSSL", "Hex", "Log"]),
        .target(name: "Proxy", dependencies: ["Tunnel", "IO", "Relay", "Endpoint", "H323", "RTP", "Config", "Log"]),
        .target(name: "Phone", dependencies: ["Tunnel", "IO", "Endpoint", "EndpointIO", "H323", "RTP", "Log"]),
        .target(name: "Console", dependencies: ["Config", "Control", "CSystem", "Log"]),

        // MARK: The daemon: composes the system layer, the control socket, the
        // configuration and (through DaemonService) the appliance services.
        .target(name: "Daemon", dependencies: ["System", "Control", "Config", "IO", "CSystem", "Log", "Proxy", "Endpoint"]),

        // MARK: The multi-call executable
        .executableTarget(name: "bloo", dependencies: [
            "CSystem", "Log", "PER", "H323", "RTP", "Tunnel", "Control", "Endpoint", "IO", "Relay",
            "Config", "System", "Update", "Proxy", "Phone", "Console", "Daemon",
        ]),

        // MARK: Unit tests, one target per module
        .testTarget(name: "LogTests", dependencies: ["Log"]),
        .testTarget(name: "HexTests", dependencies: ["Hex"]),
        .testTarget(name: "PERTests", dependencies: ["PER"], resources: [.copy("Vectors")]),
        .testTarget(name: "H323Tests", dependencies: ["H323", "PER"], resources: [.copy("Vectors")]),
        .testTarget(name: "RTPTests", dependencies: ["RTP"]),
        .testTarget(name: "TunnelTests", dependencies: ["Tunnel", "IO"]),
        .testTarget(name: "ControlTests", dependencies: ["Control"]),
        .testTarget(name: "EndpointTests", dependencies: ["Endpoint", "H323"]),
        .testTarget(name: "IOTests", dependencies: ["IO", "CSystem"]),
        .testTarget(name: "RelayTests", dependencies: ["Relay", "IO", "RTP", "CSystem", "AllocCounting"]),
        // Test support: counts heap allocations of a thread (malloc interposer).
        .target(name: "AllocCounting", path: "Tests/AllocCounting"),
        .testTarget(name: "ConfigTests", dependencies: ["Config"]),
        .testTarget(name: "SystemTests", dependencies: ["System", "CSystem"]),
        .testTarget(name: "DaemonTests", dependencies: ["Daemon", "Config", "System"]),
        .testTarget(name: "UpdateTests", dependencies: ["Update"]),
        .testTarget(name: "ProxyTests", dependencies: ["Proxy", "Endpoint", "RTP"]),
        .testTarget(name: "PhoneTests", dependencies: ["Phone", "RTP", "Proxy", "Tunnel", "IO"]),
        .testTarget(name: "ConsoleTests", dependencies: ["Console", "Config"]),
    ]
)

// MARK: H.323 endpoint drivers and lab tools (issue 5)
// EndpointIO: thin EventLoop drivers for the Endpoint machines (TPKT streams, RAS/RTP ports),
// shared by the mirror (Proxy), the phone and the lab tools. Lab: `bloo lab gatekeeper` and
// `bloo lab gateway`, test instruments, never part of the appliance's service.
package.targets.append(contentsOf: [
    .target(name: "EndpointIO", dependencies: ["Endpoint", "H323", "IO", "Log"]),
    .target(name: "Lab", dependencies: ["EndpointIO", "Endpoint", "H323", "IO", "RTP", "Phone", "Tunnel", "Log"]),
    .testTarget(name: "LabTests", dependencies: ["Lab", "Endpoint", "H323", "IO"]),
    .testTarget(name: "EndpointIOTests", dependencies: ["EndpointIO", "Endpoint", "H323", "IO"]),
])
for target in package.targets where target.name == "Proxy" || target.name == "bloo" || target.name == "ProxyTests" {
    target.dependencies.append("EndpointIO")
    if target.name == "bloo" { target.dependencies.append("Lab") }
}
// The daemon runs the lab tools as a service when the configuration enables them (issue 9).
for target in package.targets where target.name == "Daemon" { target.dependencies.append("Lab") }
for target in package.targets where target.name == "DaemonTests" { target.dependencies.append(contentsOf: ["Endpoint", "EndpointIO", "H323", "IO", "Lab", "Proxy"]) }

// MARK: Fuzz targets (only with BLOO_FUZZ=1; see fuzz/README.md)
// Each directory fuzz/targets/<Name>/ holds one libFuzzer entry point
// (a main.swift that hands a callback to libFuzzer). They exist only in the fuzz build,
// which instruments every module with -sanitize=fuzzer,address.
if Context.environment["BLOO_FUZZ"] == "1" {
    let fuzzTargets: [(name: String, dependencies: [Target.Dependency])] = [
        (name: "FuzzLogFormat", dependencies: ["Log"]),
        (name: "FuzzControlRequest", dependencies: ["Control"]),
        (name: "FuzzBundleHeader", dependencies: ["Update"]),
        (name: "FuzzBootState", dependencies: ["Update"]),
        (name: "FuzzTunnelFrame", dependencies: ["Tunnel", "IO"]),
        (name: "FuzzRTP", dependencies: ["RTP"]),
        (name: "FuzzConfigText", dependencies: ["Config"]),
        (name: "FuzzConsoleInput", dependencies: ["Console", "Config"]),
        (name: "FuzzRasMessage", dependencies: ["H323", "PER"]),
        (name: "FuzzH323UserInformation", dependencies: ["H323", "PER"]),
        (name: "FuzzH245Message", dependencies: ["H323", "PER"]),
        (name: "FuzzQ931", dependencies: ["H323", "PER"]),
        (name: "FuzzTPKT", dependencies: ["H323"]),
        (name: "FuzzPhoneMedia", dependencies: ["Phone"]),
    ]
    package.targets.append(.target(name: "FuzzSupport", path: "fuzz/support"))
    for target in fuzzTargets {
        package.targets.append(.executableTarget(
            name: target.name, dependencies: ["FuzzSupport"] + target.dependencies,
            path: "fuzz/targets/\(target.name)"))
    }
}
