import Glibc

// What the shell can tell about the box by itself (kernel files, getifaddrs), for the
// banner and for `show` when the daemon is not running.
enum SystemFacts {
    static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while bytes.count < 1 << 20 {
            let count = read(fd, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            bytes.append(contentsOf: buffer[0..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func system(hostname: String) -> String {
        var text = "hostname: \(hostname)\n"
        if let uptime = readSmallFile("/proc/uptime")?.split(separator: " ").first.flatMap({ Double($0) }) {
            let seconds = Int(uptime)
            text += "uptime: \(seconds / 86400)d \(seconds % 86400 / 3600)h \(seconds % 3600 / 60)m\n"
        }
        if let load = readSmallFile("/proc/loadavg")?.split(separator: " ").prefix(3) {
            text += "load: \(load.joined(separator: " "))\n"
        }
        if let meminfo = readSmallFile("/proc/meminfo") {
            for line in meminfo.split(separator: "\n") where line.hasPrefix("MemTotal:") || line.hasPrefix("MemAvailable:") {
                let parts = line.split(separator: " ")
                if parts.count >= 2 { text += "\(parts[0].dropLast().lowercased()): \(parts[1]) kB\n" }
            }
        }
        text += "cpus: \(sysconf(Int32(_SC_NPROCESSORS_ONLN)))\n"
        return text
    }

    /// name -> addresses with prefix lengths, in kernel order.
    static func addresses() -> [(name: String, addresses: [String])] {
        var result: [(name: String, addresses: [String])] = []
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            let name = String(cString: entry.pointee.ifa_name)
            if !result.contains(where: { $0.name == name }) { result.append((name, [])) }
            guard let address = entry.pointee.ifa_addr else { continue }
            var text = [CChar](repeating: 0, count: 64)
            var prefix = 0
            switch Int32(address.pointee.sa_family) {
            case AF_INET:
                address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { inet in
                    var raw = inet.pointee.sin_addr
                    _ = inet_ntop(AF_INET, &raw, &text, 64)
                }
                if let mask = entry.pointee.ifa_netmask {
                    mask.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { prefix = $0.pointee.sin_addr.s_addr.nonzeroBitCount }
                }
            case AF_INET6:
                address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { inet in
                    var raw = inet.pointee.sin6_addr
                    _ = inet_ntop(AF_INET6, &raw, &text, 64)
                }
                if let mask = entry.pointee.ifa_netmask {
                    mask.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { inet in
                        prefix = withUnsafeBytes(of: inet.pointee.sin6_addr) { $0.reduce(0) { $0 + $1.nonzeroBitCount } }
                    }
                }
            default:
                continue
            }
            let index = result.firstIndex { $0.name == name }!
            let printed = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            result[index].addresses.append(printed + "/\(prefix)")
        }
        return result
    }

    static func interfaces() -> String {
        var text = ""
        for (name, addresses) in addresses() {
            let state = readSmallFile("/sys/class/net/\(name)/operstate")?.split(separator: "\n").first.map(String.init) ?? "?"
            let mtu = readSmallFile("/sys/class/net/\(name)/mtu")?.split(separator: "\n").first.map(String.init) ?? "?"
            text += "\(name): state \(state), mtu \(mtu)\n"
            for address in addresses { text += "    \(address)\n" }
        }
        return text.isEmpty ? "no interfaces\n" : text
    }

    static func routes() -> String {
        var text = ""
        if let table = readSmallFile("/proc/net/route") {
            for line in table.split(separator: "\n").dropFirst() {
                let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
                guard fields.count >= 8, let destination = UInt32(fields[1], radix: 16),
                      let gateway = UInt32(fields[2], radix: 16), let mask = UInt32(fields[7], radix: 16) else { continue }
                func dotted(_ value: UInt32) -> String {
                    // /proc/net/route prints addresses in host (little-endian) byte order.
                    [value & 0xff, value >> 8 & 0xff, value >> 16 & 0xff, value >> 24].map(String.init).joined(separator: ".")
                }
                text += "\(dotted(destination))/\(mask.nonzeroBitCount)"
                text += gateway == 0 ? " dev \(fields[0])\n" : " via \(dotted(gateway)) dev \(fields[0])\n"
            }
        }
        return text.isEmpty ? "no IPv4 routes\n" : text
    }

    /// Addresses other than loopback, for the banner.
    static func bannerAddresses() -> [String] {
        addresses().filter { $0.name != "lo" }.flatMap { entry in
            entry.addresses.filter { !$0.hasPrefix("fe80") }.map { "\(entry.name) \($0)" }
        }
    }
}
