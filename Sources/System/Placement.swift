// Where the daemon's threads actually run, read back from the kernel
// (sched_getaffinity per thread), for `show system` and the placement test.
import CSystem
import Glibc

public struct ThreadPlacement: Sendable, Equatable {
    public let tid: Int32
    public let name: String
    public let cpus: [Int]
}

public enum Placement {
    /// Every thread of this process with its allowed CPUs.
    public static func threads() -> [ThreadPlacement] {
        guard let directory = opendir("/proc/self/task") else { return [] }
        defer { closedir(directory) }
        var tids: [Int32] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if let tid = Int32(name) { tids.append(tid) }
        }
        return tids.sorted().map { tid in
            var cpus = [Int32](repeating: 0, count: 1024)
            let count = csys_task_cpus(tid, &cpus, Int32(cpus.count))
            return ThreadPlacement(tid: tid, name: threadName(tid), cpus: count > 0 ? cpus.prefix(Int(count)).map(Int.init) : [])
        }
    }

    static func threadName(_ tid: Int32) -> String {
        let fd = open("/proc/self/task/\(tid)/comm", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "?" }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = read(fd, &buffer, buffer.count)
        guard count > 0 else { return "?" }
        return String(decoding: buffer.prefix(count).prefix { $0 != 0x0A }, as: UTF8.self)
    }

    /// The CPUs this machine has online (sysconf), for validating a configured list.
    public static func onlineCPUs() -> Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

    /// Pins the calling thread to `cpu`; nil or the reason.
    public static func pinCurrentThread(to cpu: Int) -> String? {
        let rc = csys_pin_current_thread(Int32(cpu))
        return rc == 0 ? nil : "CPU \(cpu): \(String(cString: strerror(rc)))"
    }

    /// "0-1,3" style list of CPUs.
    public static func listText(_ cpus: [Int]) -> String {
        var ranges: [String] = []
        var index = 0
        let sorted = cpus.sorted()
        while index < sorted.count {
            var end = index
            while end + 1 < sorted.count && sorted[end + 1] == sorted[end] + 1 { end += 1 }
            ranges.append(end == index ? "\(sorted[index])" : "\(sorted[index])-\(sorted[end])")
            index = end + 1
        }
        return ranges.joined(separator: ",")
    }
}
