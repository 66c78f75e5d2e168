// Small, bounded file helpers over Glibc (no Foundation in the firmware).
import Glibc

/// A failed system call: what we tried, on which path, and errno's text.
public struct SystemError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public let code: Int32
    public init(_ what: String, code: Int32 = errno) {
        self.code = code
        self.description = "\(what): \(String(cString: strerror(code)))"
    }
}

public enum FileIO {
    /// Reads a whole file, refusing anything longer than `limit` bytes.
    public static func read(_ path: String, limit: Int) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("cannot open \(path)") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw SystemError("cannot read \(path)")
            }
            if count == 0 { return bytes }
            bytes.append(contentsOf: buffer[0..<count])
            guard bytes.count <= limit else { throw SystemError("\(path) is longer than \(limit) bytes", code: EFBIG) }
        }
    }

    public static func readText(_ path: String, limit: Int) throws -> String {
        String(decoding: try read(path, limit: limit), as: UTF8.self)
    }

    /// Writes a file through a temporary name and rename, so readers never see half of it.
    public static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw SystemError("cannot create \(temporary)") }
        do {
            try writeAll(fd, bytes, what: temporary)
            guard fsync(fd) == 0 else { throw SystemError("cannot sync \(temporary)") }
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        close(fd)
        guard rename(temporary, path) == 0 else { throw SystemError("cannot rename \(temporary) to \(path)") }
    }

    public static func writeAll(_ fd: Int32, _ bytes: [UInt8], what: String) throws {
        try bytes.withUnsafeBytes { try writeAll(fd, $0, what: what) }
    }

    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, what: String) throws {
        guard let base = bytes.baseAddress else { return }
        var offset = 0
        while offset < bytes.count {
            let written = write(fd, base + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw SystemError("cannot write \(what)")
            }
            offset += written
        }
    }

    /// pwrite of every byte at `offset`.
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8], at offset: Int, what: String) throws {
        try bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            var done = 0
            while done < raw.count {
                let written = pwrite(fd, base + done, raw.count - done, off_t(offset + done))
                if written < 0 {
                    if errno == EINTR { continue }
                    throw SystemError("cannot write \(what)")
                }
                done += written
            }
        }
    }

    /// Reads up to `count` bytes at `offset` (fewer at the end of the file).
    public static func read(_ fd: Int32, count: Int, at offset: Int, what: String) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let got = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset + done)) }
            if got < 0 {
                if errno == EINTR { continue }
                throw SystemError("cannot read \(what)")
            }
            if got == 0 { break }
            done += got
        }
        return Array(buffer[0..<done])
    }
}
