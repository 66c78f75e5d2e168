// swift-tools-version:6.0
// The Bloophone ProxyServer firmware: one static multi-call binary, `bloo`.
// Modules and why they are split this way: docs/architecture.md.
import PackageDescription

let package = Package(
    name: "bloo",
    products: [
        .executable(name: "bloo", targets: ["bloo"]),
    ],
    targets: [
        // MARK: C surface (no Swift knowledge)
        .target(name: "CSystem"),
        .systemLibrary(name: "CNetlink", pkgConfig: "libnl-route-3.0",
                       providers: [.apt(["libnl-3-dev", "libnl-route-3-dev"])]),
        .systemLibrary(name: "CCap", pkgConfig: "libcap", providers: [.apt(["libcap-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),

        // MARK: Foundations shared by every layer
        .target(name: "Log"),

        // MARK: The multi-call executable
        .executableTarget(name: "bloo", dependencies: ["CSystem", "Log"]),

        // MARK: Unit tests
        .testTarget(name: "LogTests", dependencies: ["Log"]),
    ]
)
