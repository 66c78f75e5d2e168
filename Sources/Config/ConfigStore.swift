import Glibc
import Log

// The configuration store on the data partition. Every commit is one file
// `commits/<sequence>.conf`, written atomically (temp file, fsync, rename, fsync of the
// directory), so a power cut leaves either the old or the new commit, never a mix. The
// running configuration is the newest commit; the last `retainedCommits` are kept.
// A `commit confirmed` records its deadline in the commit file itself, so that the revert
// happens even after a restart or a reboot: whoever opens the store next calls
// `revertIfExpired()`.

/// Who made a commit, when, and why.
public struct CommitInfo: Equatable, Sendable {
    public let sequence: Int
    /// Seconds since the epoch.
    public let time: Int64
    public let user: String
    public let comment: String
    /// Set while the commit waits for `confirm`.
    public let confirmDeadline: Int64?
    /// The commit restored when the deadline passes.
    public let revertTo: Int?

    /// Public: another process reports commits too (the daemon's `config history`).
    public init(sequence: Int, time: Int64, user: String, comment: String, confirmDeadline: Int64?, revertTo: Int?) {
        self.sequence = sequence
        self.time = time
        self.user = user
        self.comment = comment
        self.confirmDeadline = confirmDeadline
        self.revertTo = revertTo
    }
}

public struct StoreError: Error, Equatable, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public final class ConfigStore: @unchecked Sendable {
    public static let retainedCommits = 20
    public static let defaultDirectory = "/data/config"

    public let directory: String
    private let commitsDirectory: String
    private let clock: @Sendable () -> Int64
    /// Seconds per "minute" of `commit confirmed`: 60, or less in tests.
    public let confirmUnitSeconds: Int64
    private let log = Logger(subsystem: "config")

    /// Opens (creating if needed) the store in `directory`.
    public init(directory: String, confirmUnitSeconds: Int64 = 60,
                clock: @escaping @Sendable () -> Int64 = { Int64(time(nil)) }) throws(StoreError) {
        self.directory = directory
        self.commitsDirectory = directory + "/commits"
        self.clock = clock
        self.confirmUnitSeconds = max(1, confirmUnitSeconds)
        for path in [directory, commitsDirectory] {
            if mkdir(path, 0o750) != 0 && errno != EEXIST {
                throw StoreError("cannot create \(path): \(String(cString: strerror(errno)))")
            }
        }
    }

    // MARK: Reading

    /// The running configuration and the commit that made it (sequence 0 = factory default).
    public func running() throws(StoreError) -> (configuration: Configuration, info: CommitInfo) {
        try withLock(exclusive: false) { () throws(StoreError) in try loadNewest() }
    }

    /// Commits, newest first: index N is what `rollback N` loads. The factory default is the
    /// last entry while fewer than `retainedCommits` commits were ever made.
    public func history() throws(StoreError) -> [CommitInfo] {
        try withLock(exclusive: false) { () throws(StoreError) in
            let present = try sequences()
            var infos = present.reversed().compactMap { sequence in try? read(sequence).info }
            // The factory default stays reachable until real commits push it out.
            if infos.count < ConfigStore.retainedCommits, present.count < ConfigStore.retainedCommits,
               present.first.map({ $0 == 1 }) ?? true {
                infos.append(Self.factoryInfo)
            }
            return infos
        }
    }

    /// The configuration of `rollback N`.
    public func rollback(_ index: Int) throws(StoreError) -> Configuration {
        let infos = try history()
        guard index >= 0, index < infos.count else {
            throw StoreError("rollback \(index): only \(infos.count) commit\(infos.count == 1 ? "" : "s") (0-\(infos.count - 1)) are kept")
        }
        return try withLock(exclusive: false) { () throws(StoreError) in try read(infos[index].sequence).configuration }
    }

    /// The pending `commit confirmed`, if any.
    public func pendingConfirm() throws(StoreError) -> CommitInfo? {
        let info = try running().info
        return info.confirmDeadline == nil ? nil : info
    }

    // MARK: Writing

    /// Makes `configuration` the running one. With `confirmMinutes`, it reverts to the
    /// current configuration after that many minutes unless `confirm()` is called.
    /// A plain commit while a confirmation is pending confirms it.
    @discardableResult
    public func commit(_ configuration: Configuration, user: String, comment: String = "",
                       confirmMinutes: Int? = nil) throws(StoreError) -> CommitInfo {
        try withLock(exclusive: true) { () throws(StoreError) in
            let current = try loadNewest().info
            var deadline: Int64?, revertTo: Int?
            if let minutes = confirmMinutes {
                guard (1...1440).contains(minutes) else { throw StoreError("commit confirmed: minutes must be 1-1440") }
                deadline = clock() + Int64(minutes) * confirmUnitSeconds
                // A second `commit confirmed` extends the window; the revert still goes back
                // to the last confirmed configuration.
                revertTo = current.confirmDeadline != nil ? current.revertTo : current.sequence
            }
            let info = CommitInfo(sequence: current.sequence + 1, time: clock(), user: user, comment: comment,
                                  confirmDeadline: deadline, revertTo: revertTo)
            try write(info, configuration)
            try prune(keeping: revertTo)
            log.notice("config.commit", ["sequence": String(info.sequence), "user": user,
                                         "confirm": deadline.map { String($0) } ?? "none"])
            return info
        }
    }

    /// Confirms the pending `commit confirmed`.
    public func confirm(user: String) throws(StoreError) {
        try withLock(exclusive: true) { () throws(StoreError) in
            let (configuration, info) = try loadNewest()
            guard info.confirmDeadline != nil else { throw StoreError("confirm: no commit is waiting for confirmation") }
            let confirmed = CommitInfo(sequence: info.sequence, time: info.time, user: info.user, comment: info.comment,
                                       confirmDeadline: nil, revertTo: nil)
            try write(confirmed, configuration)
            log.notice("config.confirm", ["sequence": String(info.sequence), "user": user])
        }
    }

    /// If a `commit confirmed` deadline has passed, restores the configuration it replaced
    /// as a new commit and returns that commit; otherwise nil.
    @discardableResult
    public func revertIfExpired() throws(StoreError) -> CommitInfo? {
        try withLock(exclusive: true) { () throws(StoreError) -> CommitInfo? in
            let info = try loadNewest().info
            guard let deadline = info.confirmDeadline, clock() >= deadline else { return nil }
            let target = info.revertTo ?? 0
            let previous = try read(target).configuration
            let reverted = CommitInfo(sequence: info.sequence + 1, time: clock(), user: "system",
                                      comment: "automatic rollback: commit \(info.sequence) was not confirmed",
                                      confirmDeadline: nil, revertTo: nil)
            try write(reverted, previous)
            try prune(keeping: nil)
            log.warning("config.revert", ["sequence": String(info.sequence), "restored": String(target)])
            return reverted
        }
    }

    /// Seconds until the pending confirmation expires (0 when due), or nil.
    public func secondsUntilRevert() throws(StoreError) -> Int64? {
        guard let deadline = try pendingConfirm()?.confirmDeadline else { return nil }
        return max(0, deadline - clock())
    }

    /// Forgets every commit: the next read returns the factory default.
    public func factoryReset(user: String) throws(StoreError) {
        try withLock(exclusive: true) { () throws(StoreError) in
            let current = try loadNewest().info
            let info = CommitInfo(sequence: current.sequence + 1, time: clock(), user: user,
                                  comment: "factory reset", confirmDeadline: nil, revertTo: nil)
            try write(info, FactoryDefault.configuration)
            for sequence in try sequences() where sequence != info.sequence {
                unlink(path(sequence))
            }
            syncDirectory(commitsDirectory)
            log.warning("config.factory_reset", ["user": user])
        }
    }

    // MARK: Files

    static let factoryInfo = CommitInfo(sequence: 0, time: 0, user: "factory", comment: "factory default",
                                        confirmDeadline: nil, revertTo: nil)

    private func path(_ sequence: Int) -> String {
        let digits = String(sequence)
        return commitsDirectory + "/" + String(repeating: "0", count: max(0, 10 - digits.count)) + digits + ".conf"
    }

    /// Sequence numbers of the commit files present, ascending. Temp files are ignored.
    private func sequences() throws(StoreError) -> [Int] {
        guard let dir = opendir(commitsDirectory) else {
            throw StoreError("cannot read \(commitsDirectory): \(String(cString: strerror(errno)))")
        }
        defer { closedir(dir) }
        var result: [Int] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard name.hasSuffix(".conf"), name.utf8.count == 15,
                  name.utf8.prefix(10).allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                  let sequence = Int(name.prefix(10)) else { continue }
            result.append(sequence)
        }
        return result.sorted()
    }

    private func loadNewest() throws(StoreError) -> (configuration: Configuration, info: CommitInfo) {
        // The newest readable commit wins; a damaged file (a disk fault, never a torn
        // rename) is skipped with a log line rather than leaving the box unconfigured.
        for sequence in try sequences().reversed() {
            do {
                return try read(sequence)
            } catch {
                log.error("config.unreadable", ["sequence": String(sequence), "error": error.message])
            }
        }
        return (FactoryDefault.configuration, Self.factoryInfo)
    }

    private func read(_ sequence: Int) throws(StoreError) -> (configuration: Configuration, info: CommitInfo) {
        if sequence == 0 { return (FactoryDefault.configuration, Self.factoryInfo) }
        let text = try readFile(path(sequence), limit: 4 << 20)
        var header: [String: String] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("#@ ") {
            let body = line.dropFirst(3)
            guard let space = body.firstIndex(of: " ") else { continue }
            header[String(body[..<space])] = String(body[body.index(after: space)...])
        }
        guard header["sequence"].flatMap({ Int($0) }) == sequence else {
            throw StoreError("commit \(sequence): header does not match the file name")
        }
        let comment = header["comment"].flatMap { try? ConfigLexer.words($0).first } ?? ""
        let info = CommitInfo(sequence: sequence, time: header["time"].flatMap { Int64($0) } ?? 0,
                              user: header["user"] ?? "?", comment: comment,
                              confirmDeadline: header["confirm-deadline"].flatMap { Int64($0) },
                              revertTo: header["revert-to"].flatMap { Int($0) })
        do {
            return (try Configuration(text: text), info)
        } catch {
            throw StoreError("commit \(sequence) is invalid: \(error.description)")
        }
    }

    private func write(_ info: CommitInfo, _ configuration: Configuration) throws(StoreError) {
        var text = "#@ sequence \(info.sequence)\n#@ time \(info.time)\n#@ user \(info.user)\n"
        text += "#@ comment \(ConfigLexer.quoted(info.comment.filter { $0 != "\n" }))\n"
        if let deadline = info.confirmDeadline { text += "#@ confirm-deadline \(deadline)\n" }
        if let revertTo = info.revertTo { text += "#@ revert-to \(revertTo)\n" }
        text += configuration.text
        try writeAtomically(path: path(info.sequence), contents: text)
    }

    private func prune(keeping protected: Int?) throws(StoreError) {
        let all = try sequences()
        guard all.count > ConfigStore.retainedCommits else { return }
        for sequence in all.dropLast(ConfigStore.retainedCommits) where sequence != protected {
            unlink(path(sequence))
        }
        syncDirectory(commitsDirectory)
    }

    /// Serialises writers across processes (the daemon, a console in local mode).
    private func withLock<T>(exclusive: Bool, _ body: () throws(StoreError) -> T) throws(StoreError) -> T {
        // Readers never create the lock file: a reader running as another user (root's
        // CLI beside the daemon's service user) must not leave a file the owner cannot open.
        let fd = exclusive ? open(directory + "/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o640)
                           : open(directory + "/lock", O_RDONLY | O_CLOEXEC)
        if fd < 0, !exclusive, errno == ENOENT { return try body() }  // nobody has written yet
        guard fd >= 0 else { throw StoreError("cannot open \(directory)/lock: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        while flock(fd, exclusive ? LOCK_EX : LOCK_SH) != 0 {
            guard errno == EINTR else { throw StoreError("cannot lock \(directory): \(String(cString: strerror(errno)))") }
        }
        return try body()
    }
}

/// Reads a whole file of at most `limit` bytes.
func readFile(_ path: String, limit: Int) throws(StoreError) -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw StoreError("cannot open \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = read(fd, &buffer, buffer.count)
        if count < 0 {
            if errno == EINTR { continue }
            throw StoreError("cannot read \(path): \(String(cString: strerror(errno)))")
        }
        if count == 0 { break }
        bytes.append(contentsOf: buffer[0..<count])
        guard bytes.count <= limit else { throw StoreError("\(path) is larger than \(limit) bytes") }
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Replaces `path` so that a crash at any point leaves either the old or the new contents:
/// write a temp file beside it, fsync it, rename over the target, fsync the directory.
public func writeAtomically(path: String, contents: String) throws(StoreError) {
    let slash = path.lastIndex(of: "/")
    let directory = slash.map { String(path[..<$0]) } ?? "."
    let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
    let temp = directory + "/." + name + ".tmp"
    let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
    guard fd >= 0 else { throw StoreError("cannot create \(temp): \(String(cString: strerror(errno)))") }
    var bytes = Array(contents.utf8)[...]
    while !bytes.isEmpty {
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if written < 0 {
            if errno == EINTR { continue }
            let reason = String(cString: strerror(errno))
            close(fd); unlink(temp)
            throw StoreError("cannot write \(temp): \(reason)")
        }
        bytes = bytes.dropFirst(written)
    }
    guard fsync(fd) == 0 else {
        let reason = String(cString: strerror(errno))
        close(fd); unlink(temp)
        throw StoreError("cannot sync \(temp): \(reason)")
    }
    close(fd)
    guard rename(temp, path) == 0 else {
        let reason = String(cString: strerror(errno))
        unlink(temp)
        throw StoreError("cannot rename \(temp): \(reason)")
    }
    syncDirectory(directory)
}

/// Makes a rename or unlink in `directory` durable.
func syncDirectory(_ directory: String) {
    let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if fd >= 0 { fsync(fd); close(fd) }
}
