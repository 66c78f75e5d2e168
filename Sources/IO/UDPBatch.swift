import Glibc
import CSystem

/// Preallocated buffers for draining a UDP socket with one recvmmsg(2) call.
/// Nothing is allocated after init; the same buffers serve every call.
public final class UDPReceiveBatch {
    public let capacity: Int
    public let bufferSize: Int
    public let buffers: UnsafeMutableRawPointer
    private let headers: UnsafeMutablePointer<csys_mmsghdr>
    private let iovecs: UnsafeMutablePointer<iovec>
    private let addresses: UnsafeMutablePointer<sockaddr_in>
    private let control: UnsafeMutableRawPointer
    private let controlSize: Int
    // Unchecked exclusivity: these are touched for every datagram, only ever from the
    // owning thread, and never while a reference to them is held.
    /// Datagrams held after the last `receive`.
    @exclusivity(unchecked) public private(set) var count = 0
    /// Headers the kernel wrote to in the last call (only those need resetting).
    @exclusivity(unchecked) private var dirty: Int

    public init(capacity: Int = 64, bufferSize: Int = 2048) {
        self.capacity = capacity
        self.bufferSize = bufferSize
        buffers = .allocate(byteCount: capacity * bufferSize, alignment: 64)
        headers = .allocate(capacity: capacity)
        iovecs = .allocate(capacity: capacity)
        addresses = .allocate(capacity: capacity)
        // Room for SO_RXQ_OVFL (uint32) and IP_TOS (one byte) control messages.
        controlSize = csys_cmsg_space(4) + csys_cmsg_space(4)
        control = .allocate(byteCount: capacity * controlSize, alignment: 16)
        dirty = capacity
        headers.initialize(repeating: csys_mmsghdr(), count: capacity)
        addresses.initialize(repeating: sockaddr_in(), count: capacity)
        for i in 0..<capacity {
            iovecs[i] = iovec(iov_base: buffers + i * bufferSize, iov_len: bufferSize)
            headers[i].msg_hdr.msg_iov = iovecs + i
            headers[i].msg_hdr.msg_iovlen = 1
            headers[i].msg_hdr.msg_name = UnsafeMutableRawPointer(addresses + i)
            headers[i].msg_hdr.msg_control = control + i * controlSize
        }
    }

    deinit {
        buffers.deallocate()
        headers.deallocate()
        iovecs.deallocate()
        addresses.deallocate()
        control.deallocate()
    }

    /// Reads up to `limit` (default: capacity) datagrams without blocking.
    /// Returns how many were read, 0 when none was queued, or -errno.
    @inline(__always)
    public func receive(from fd: Int32, limit: Int? = nil) -> Int {
        let n = min(limit ?? capacity, capacity)
        // The kernel rewrites only the headers of the datagrams it returned: reset those.
        for i in 0..<dirty {
            headers[i].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_in>.size)
            headers[i].msg_hdr.msg_controllen = controlSize
            headers[i].msg_hdr.msg_flags = 0
        }
        let rc = csys_recvmmsg(fd, headers, UInt32(n), Int32(MSG_DONTWAIT), nil)
        dirty = max(Int(rc), 0)
        if rc < 0 {
            count = 0
            let error = csys_errno()
            return error == EAGAIN || error == EWOULDBLOCK ? 0 : -Int(error)
        }
        count = Int(rc)
        return count
    }

    @inline(__always) public func bytes(at index: Int) -> UnsafeMutableRawPointer { buffers + index * bufferSize }
    @inline(__always) public func length(at index: Int) -> Int { Int(headers[index].msg_len) }
    @inline(__always) public func source(at index: Int) -> IPv4Endpoint { IPv4Endpoint(addresses[index]) }
    /// True when the datagram did not fit its buffer (MSG_TRUNC).
    @inline(__always) public func truncated(at index: Int) -> Bool { headers[index].msg_hdr.msg_flags & Int32(MSG_TRUNC) != 0 }

    /// The kernel's cumulative drop counter (SO_RXQ_OVFL) and TOS byte (IP_RECVTOS)
    /// carried by datagram `index`, when the socket enabled them.
    public func ancillary(at index: Int) -> (drops: UInt32?, tos: UInt8?) {
        var drops: UInt32 = 0, tos: Int32 = -1
        var sentinel = true
        withUnsafeMutablePointer(to: &headers[index].msg_hdr) { hdr in
            var d: UInt32 = UInt32.max
            csys_scan_cmsgs(hdr, &d, &tos)
            if d != UInt32.max { drops = d } else { sentinel = false }
        }
        return (sentinel ? drops : nil, tos >= 0 ? UInt8(tos) : nil)
    }
}

/// Preallocated sendmmsg(2) batch that points at caller-owned bytes (no copy).
/// Consecutive datagrams of equal size to the same destination are merged into one
/// UDP GSO message (UDP_SEGMENT): one kernel traversal for the whole run.
public final class UDPSendBatch {
    public let capacity: Int
    public let maxSegments: Int
    private let headers: UnsafeMutablePointer<csys_mmsghdr>
    private let iovecs: UnsafeMutablePointer<iovec>
    private let addresses: UnsafeMutablePointer<sockaddr_in>
    private let destinations: UnsafeMutablePointer<IPv4Endpoint>
    private let segmentSizes: UnsafeMutablePointer<Int>
    private let control: UnsafeMutableRawPointer
    private let controlSize: Int
    // Unchecked exclusivity: as in UDPReceiveBatch, per-datagram state of one thread.
    /// Messages (GSO runs) and datagrams queued.
    @exclusivity(unchecked) public private(set) var messageCount = 0
    @exclusivity(unchecked) public private(set) var datagramCount = 0
    /// Merge runs into GSO messages; switched off for good if the kernel refuses.
    @exclusivity(unchecked) public var segmentationOffload: Bool
    /// Messages are being closed: the next datagram starts a new one.
    @exclusivity(unchecked) private var runClosed = true

    public init(capacity: Int = 64, maxSegments: Int = 64, segmentationOffload: Bool = true) {
        self.capacity = capacity
        self.maxSegments = maxSegments
        self.segmentationOffload = segmentationOffload
        headers = .allocate(capacity: capacity)
        headers.initialize(repeating: csys_mmsghdr(), count: capacity)
        iovecs = .allocate(capacity: capacity * maxSegments)
        addresses = .allocate(capacity: capacity)
        addresses.initialize(repeating: sockaddr_in(), count: capacity)
        destinations = .allocate(capacity: capacity)
        destinations.initialize(repeating: .any, count: capacity)
        segmentSizes = .allocate(capacity: capacity)
        segmentSizes.initialize(repeating: 0, count: capacity)
        controlSize = csys_cmsg_space(2)
        control = .allocate(byteCount: capacity * controlSize, alignment: 16)
    }

    deinit {
        headers.deallocate()
        iovecs.deallocate()
        addresses.deallocate()
        destinations.deallocate()
        segmentSizes.deallocate()
        control.deallocate()
    }

    public var isFull: Bool { messageCount == capacity && runClosed }

    /// Queues a datagram; nil destination means the socket is connected.
    /// Returns false when the batch is full (flush first).
    @inline(__always)
    public func append(_ bytes: UnsafeMutableRawPointer, length: Int, to destination: IPv4Endpoint?) -> Bool {
        let dest = destination ?? .any
        if segmentationOffload && !runClosed && messageCount > 0 {
            let m = messageCount - 1
            let segments = Int(headers[m].msg_hdr.msg_iovlen)
            if destinations[m] == dest && segments < maxSegments && length <= segmentSizes[m] {
                iovecs[m * maxSegments + segments] = iovec(iov_base: bytes, iov_len: length)
                headers[m].msg_hdr.msg_iovlen = segments + 1
                datagramCount += 1
                // A shorter datagram can only be the last segment of a GSO message.
                if length < segmentSizes[m] { runClosed = true }
                return true
            }
        }
        guard messageCount < capacity else { return false }
        let m = messageCount
        iovecs[m * maxSegments] = iovec(iov_base: bytes, iov_len: length)
        headers[m].msg_hdr.msg_iov = iovecs + m * maxSegments
        headers[m].msg_hdr.msg_iovlen = 1
        headers[m].msg_hdr.msg_control = nil
        headers[m].msg_hdr.msg_controllen = 0
        headers[m].msg_hdr.msg_flags = 0
        if destination != nil {
            addresses[m] = dest.sockaddr
            headers[m].msg_hdr.msg_name = UnsafeMutableRawPointer(addresses + m)
            headers[m].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_in>.size)
        } else {
            headers[m].msg_hdr.msg_name = nil
            headers[m].msg_hdr.msg_namelen = 0
        }
        destinations[m] = dest
        segmentSizes[m] = length
        messageCount += 1
        datagramCount += 1
        runClosed = false
        return true
    }

    /// Ends the current GSO run (e.g. before switching to another socket's packets).
    public func closeRun() { runClosed = true }

    /// Sends everything queued on `fd` and empties the batch. Returns the number of
    /// datagrams the kernel accepted; the rest (socket buffer full, error) are dropped.
    @discardableResult
    public func flush(_ fd: Int32) -> Int {
        guard messageCount > 0 else { return 0 }
        if segmentationOffload {
            for m in 0..<messageCount where headers[m].msg_hdr.msg_iovlen > 1 {
                let cmsg = control + m * controlSize
                headers[m].msg_hdr.msg_control = cmsg
                headers[m].msg_hdr.msg_controllen = csys_put_gso_cmsg(cmsg, UInt16(segmentSizes[m]))
            }
        }
        var sent = 0, datagrams = 0
        while sent < messageCount {
            let rc = csys_sendmmsg(fd, headers + sent, UInt32(messageCount - sent), Int32(MSG_DONTWAIT))
            if rc <= 0 {
                let error = csys_errno()
                if rc < 0 && error == EINTR { continue }
                if rc < 0 && (error == EIO || error == EINVAL || error == ENOTSUP) && segmentationOffload
                    && headers[sent].msg_hdr.msg_iovlen > 1 {
                    // The route or device refused GSO: resend this run one datagram at a time.
                    datagrams += sendSegmentsSeparately(fd, message: sent)
                    segmentationOffload = false
                    sent += 1
                    continue
                }
                if rc < 0 && error != EAGAIN && error != EWOULDBLOCK && error != ENOBUFS {
                    // Unreachable peer (ICMP error queued) and the like: skip this message.
                    sent += 1
                    continue
                }
                break
            }
            for m in sent..<(sent + Int(rc)) { datagrams += Int(headers[m].msg_hdr.msg_iovlen) }
            sent += Int(rc)
        }
        reset()
        return datagrams
    }

    private func sendSegmentsSeparately(_ fd: Int32, message m: Int) -> Int {
        var hdr = headers[m].msg_hdr
        hdr.msg_control = nil
        hdr.msg_controllen = 0
        let segments = Int(hdr.msg_iovlen)
        var ok = 0
        for s in 0..<segments {
            hdr.msg_iov = iovecs + m * maxSegments + s
            hdr.msg_iovlen = 1
            if sendmsg(fd, &hdr, Int32(MSG_DONTWAIT)) >= 0 { ok += 1 }
        }
        return ok
    }

    /// Drops everything queued.
    @inline(__always)
    public func reset() {
        messageCount = 0
        datagramCount = 0
        runClosed = true
    }
}
