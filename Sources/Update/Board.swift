// What one board is: its name, its devices, its kernel modules and its trial rules.
// Read from /etc/bloo/board.conf (a copy of board/<name>/board.conf), key=value lines.

public struct BoardError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

public struct Board: Sendable, Equatable {
    public static let path = "/etc/bloo/board.conf"

    public var name: String
    public var bootState: String
    public var slotA: String
    public var slotB: String
    public var data: String
    public var dataFilesystem: String
    /// Kernel modules, in load order, as paths of .ko files.
    public var modules: [String]
    /// Boots a new slot may take before it must be confirmed.
    public var trialTries: Int
    /// Seconds after boot within which a trial slot must report healthy.
    public var trialDeadline: Int

    public func device(of slot: Slot) -> String { slot == .a ? slotA : slotB }

    public init(parsing text: String) throws {
        var values: [String: String] = [:]
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingSpaces
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let equals = line.firstIndex(of: "=") else { throw BoardError("board.conf line \(number + 1): expected key=value") }
            values[String(line[..<equals]).trimmingSpaces] = String(line[line.index(after: equals)...]).trimmingSpaces
        }
        func required(_ key: String) throws -> String {
            guard let value = values[key], !value.isEmpty else { throw BoardError("board.conf: \(key) is missing") }
            return value
        }
        func number(_ key: String, default value: Int, range: ClosedRange<Int>) throws -> Int {
            guard let text = values[key] else { return value }
            guard let number = Int(text), range.contains(number) else { throw BoardError("board.conf: \(key) must be in \(range)") }
            return number
        }
        name = try required("board")
        bootState = try required("bootstate")
        slotA = try required("slot-a")
        slotB = try required("slot-b")
        data = try required("data")
        dataFilesystem = values["data-fstype"] ?? "ext4"
        modules = (values["modules"] ?? "").split(separator: " ").map(String.init)
        trialTries = try number("trial-tries", default: 1, range: 1...9)
        trialDeadline = try number("trial-deadline", default: 300, range: 5...86400)
    }

    public static func load(path: String = Board.path) throws -> Board {
        try Board(parsing: try FileIO.readText(path, limit: 65536))
    }

    /// Applies `bloo.trial_deadline=N` from the kernel command line (tests shorten it).
    public mutating func apply(commandLine: String) {
        for word in commandLine.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
            if word.hasPrefix("bloo.trial_deadline="), let value = Int(word.dropFirst("bloo.trial_deadline=".count)),
               (5...86400).contains(value) {
                trialDeadline = value
            }
        }
    }
}

extension StringProtocol {
    var trimmingSpaces: String {
        let scalars = Array(unicodeScalars)
        guard let first = scalars.firstIndex(where: { $0 != " " && $0 != "\t" && $0 != "\r" }),
              let last = scalars.lastIndex(where: { $0 != " " && $0 != "\t" && $0 != "\r" }) else { return "" }
        var result = String.UnicodeScalarView()
        result.append(contentsOf: scalars[first...last])
        return String(result)
    }
}
