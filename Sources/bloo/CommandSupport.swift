// Small file and process helpers shared by the commands.
import Glibc
import IO

enum CommandSupport {
    /// Reads a whole file given on the command line, refusing anything larger than
    /// `limit` bytes (a subscriber table or a phone configuration is small).
    static func readFile(_ path: String, limit: Int = 4 << 20) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open(\(path))") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("read(\(path))")
            }
            if n == 0 { return bytes }
            bytes += chunk[0..<n]
            if bytes.count > limit { throw SystemError("read(\(path)): larger than \(limit) bytes", EFBIG) }
        }
    }

    static func readText(_ path: String, limit: Int = 4 << 20) throws -> String {
        String(decoding: try readFile(path, limit: limit), as: UTF8.self)
    }

    /// Many tunnels or calls means many descriptors: take the hard limit.
    static func raiseDescriptorLimit() {
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0 else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(resource, &limit)
    }
}
