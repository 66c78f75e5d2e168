// The boot state: which slot is good, which is on trial and how many tries it has
// left, the anti-downgrade floor, and what happened last (docs/update.md).
//
// Stored twice on its own partition (copies at offsets 0 and 4096, 512 bytes each).
// Each copy is text ending in its own SHA-256; a write goes to the copy that does NOT
// hold the newest valid record (generation % 2), so a torn write never loses both.
import Hex
import Glibc

public enum Slot: String, Sendable, CaseIterable {
    case a = "A"
    case b = "B"

    public var other: Slot { self == .a ? .b : .a }
}

public struct BootState: Equatable, Sendable {
    public static let recordSize = 512
    public static let copyOffsets = [0, 4096]

    public var generation: UInt64 = 0
    /// The last slot that booted and was confirmed healthy.
    public var good: Slot = .a
    /// The slot being tried, if any, and how many boots it may still take.
    public var trial: Slot?
    public var triesLeft = 0
    /// The slot the last boot chose (written by `bloo init`).
    public var booted: Slot?
    /// Bundles below this version are refused; raised when a slot is confirmed.
    public var floor: FirmwareVersion
    /// The firmware version in each slot; nil when the slot holds nothing usable.
    public var versionA: FirmwareVersion?
    public var versionB: FirmwareVersion?
    /// Why the last trial failed, as its watchdog recorded it.
    public var failure: String?
    /// The last significant event, for `show update`.
    public var event: String

    public init(good: Slot, version: FirmwareVersion, event: String) {
        self.good = good
        self.floor = version
        self.event = event
        self[version: good] = version
    }

    public subscript(version slot: Slot) -> FirmwareVersion? {
        get { slot == .a ? versionA : versionB }
        set { if slot == .a { versionA = newValue } else { versionB = newValue } }
    }

    /// "B (0.2.0)" or "B (empty)".
    public func describe(_ slot: Slot) -> String {
        "\(slot.rawValue) (\(self[version: slot].map { "\($0)" } ?? "empty"))"
    }

    static func sanitized(_ text: String) -> String {
        String(text.map { $0 == "\n" || $0 == "\r" ? " " : $0 }.prefix(200))
    }

    /// The 512-byte record: text lines, a `sha256` line over everything before it, zero padding.
    public func encoded() -> [UInt8] {
        var body = "bloo-boot-state 1\n"
        body += "generation \(generation)\n"
        body += "good \(good.rawValue)\n"
        body += "trial \(trial?.rawValue ?? "-")\n"
        body += "tries \(triesLeft)\n"
        body += "booted \(booted?.rawValue ?? "-")\n"
        body += "floor \(floor)\n"
        body += "version-a \(versionA.map { "\($0)" } ?? "-")\n"
        body += "version-b \(versionB.map { "\($0)" } ?? "-")\n"
        body += "failure \(failure.map(BootState.sanitized) ?? "-")\n"
        body += "event \(BootState.sanitized(event))\n"
        var bytes = Array(body.utf8)
        bytes += Array("sha256 \(Hex.encode(SHA256Hasher.digest(bytes)))\n".utf8)
        bytes += [UInt8](repeating: 0, count: max(0, BootState.recordSize - bytes.count))
        return bytes
    }

    /// Nil when the record is torn, corrupt or of an unknown format.
    public static func decode(_ record: [UInt8]) -> BootState? {
        let used = Array(record.prefix(while: { $0 != 0 }))
        // Padding is part of the record: anything but zeros after the text is corruption.
        guard record[used.count...].allSatisfy({ $0 == 0 }) else { return nil }
        let marker = Array("\nsha256 ".utf8)
        guard used.count > marker.count + 64, used.last == UInt8(ascii: "\n") else { return nil }
        var markerStart: Int?
        var index = used.count - marker.count
        while index >= 0 {
            if Array(used[index..<index + marker.count]) == marker { markerStart = index; break }
            index -= 1
        }
        guard let markerStart else { return nil }
        let body = Array(used[...markerStart])
        let stated = String(decoding: used[(markerStart + marker.count)..<(used.count - 1)], as: UTF8.self)
        guard Hex.encode(SHA256Hasher.digest(body)) == stated,
              let text = String(validating: body, as: UTF8.self) else { return nil }
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let space = line.firstIndex(of: " ") else { return nil }
            fields[String(line[..<space])] = String(line[line.index(after: space)...])
        }
        guard fields["bloo-boot-state"] == "1",
              let generation = fields["generation"].flatMap({ UInt64($0) }),
              let good = fields["good"].flatMap({ Slot(rawValue: $0) }),
              let tries = fields["tries"].flatMap({ Int($0) }), (0...9).contains(tries),
              let floor = fields["floor"].flatMap({ FirmwareVersion($0) }),
              let event = fields["event"] else { return nil }
        func optionalSlot(_ key: String) -> Slot?? {
            guard let value = fields[key] else { return nil }
            if value == "-" { return .some(nil) }
            guard let slot = Slot(rawValue: value) else { return nil }
            return .some(slot)
        }
        func optionalVersion(_ key: String) -> FirmwareVersion?? {
            guard let value = fields[key] else { return nil }
            if value == "-" { return .some(nil) }
            guard let version = FirmwareVersion(value) else { return nil }
            return .some(version)
        }
        guard let trial = optionalSlot("trial"), let booted = optionalSlot("booted"),
              let versionA = optionalVersion("version-a"), let versionB = optionalVersion("version-b"),
              let failure = fields["failure"] else { return nil }
        var state = BootState(good: good, version: floor, event: event)
        state.generation = generation
        state.trial = trial
        state.triesLeft = tries
        state.booted = booted
        state.floor = floor
        state.versionA = versionA
        state.versionB = versionB
        state.failure = failure == "-" ? nil : failure
        return state
    }
}

/// Reads and writes the two copies of the boot state on a device or file.
public struct BootStateStore: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    /// The newest valid copy. Throws when neither copy is valid.
    public func read() throws -> BootState {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("cannot open the boot state \(path)") }
        defer { close(fd) }
        var best: BootState?
        for offset in BootState.copyOffsets {
            let record = try FileIO.read(fd, count: BootState.recordSize, at: offset, what: path)
            if let state = BootState.decode(record), state.generation >= (best?.generation ?? 0) {
                best = state
            }
        }
        guard let best else { throw SystemError("the boot state on \(path) has no valid copy", code: EILSEQ) }
        return best
    }

    /// Writes `state` as the next generation after `previous` into the other copy, and syncs.
    /// Returns the state as written.
    @discardableResult
    public func write(_ state: BootState, after previous: BootState?) throws -> BootState {
        var next = state
        next.generation = (previous?.generation ?? 0) + 1
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("cannot open the boot state \(path) for writing") }
        defer { close(fd) }
        let offset = BootState.copyOffsets[Int(next.generation % 2)]
        try FileIO.writeAll(fd, next.encoded(), at: offset, what: path)
        guard fsync(fd) == 0 else { throw SystemError("cannot sync the boot state \(path)") }
        return next
    }

    /// Reads, changes and writes back in one step.
    @discardableResult
    public func update(_ change: (inout BootState) throws -> Void) throws -> BootState {
        let current = try read()
        var next = current
        try change(&next)
        return try write(next, after: current)
    }
}
