import Glibc
import IO

/// The ports of one pool (the mirror's RAS or call-signalling ports, the terminator's
/// UDP audio legs) that belong to one worker: worker i of n takes every n-th, so that
/// workers never contend for a port. Handed out least recently released first: a port a
/// client gave back is reused only after every other free port, so late packets for the
/// old owner (a gatekeeper's answer, a phone's audio) do not reach the new one.
struct PortPool {
    /// Free ports in the order they are handed out, from `head` on.
    private var free: [UInt16]
    private var head = 0
    /// The ports in `free` from `head` on: a port given back twice is queued once.
    private var queued: Set<UInt16>

    init(range: ClosedRange<UInt16>, worker: Int, workers: Int) {
        free = range.enumerated().compactMap { slot, port in slot % max(1, workers) == worker ? port : nil }
        queued = Set(free)
    }

    var available: Int { free.count - head }

    mutating func take() -> UInt16? {
        guard head < free.count else { return nil }
        let port = free[head]
        head += 1
        queued.remove(port)
        if head >= 64 && head * 2 >= free.count {  // drop the taken prefix now and then
            free.removeFirst(head)
            head = 0
        }
        return port
    }

    /// A released port, or one another program holds: back of the queue (once).
    mutating func give(_ port: UInt16) {
        if queued.insert(port).inserted { free.append(port) }
    }

    /// Opens `what` on the next free port. A port another program holds (the open fails)
    /// goes to the back of the queue and the next one is tried, at most 8, so one squatter
    /// costs one attempt and a full range does not cost a pass over all of it.
    mutating func open<T>(_ what: String, _ open: (UInt16) throws -> T) throws -> (T, UInt16) {
        var lastError: Error = SystemError("no free \(what) port", EADDRINUSE)
        for _ in 0..<8 {
            guard let port = take() else { break }
            do {
                return (try open(port), port)
            } catch {
                give(port)
                lastError = error
            }
        }
        throw lastError
    }
}
