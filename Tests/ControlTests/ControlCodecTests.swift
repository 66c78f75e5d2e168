import Testing
@testable import Control

@Suite struct ControlCodecTests {
    static let requests: [ControlRequest] = [
        .show(topic: "version", argument: nil, format: .text),
        .show(topic: "interfaces", argument: "eth0.100", format: .kv),
        .configGet(.running),
        .configGet(.candidate),
        .configValidate(text: "hostname box\n"),
        .configCommit(text: "hostname box\ninterface eth0\n", confirmMinutes: 5, user: "alice", comment: "new vlan"),
        .configCommit(text: "", confirmMinutes: nil, user: nil, comment: nil),
        .confirm,
        .rollback(3),
        .reboot,
        .configHistory,
        .configGetCommit(0),
        .configGetCommit(999),
    ]

    @Test(arguments: requests)
    func requestsSurviveTheirEncoding(request: ControlRequest) throws {
        let decoded = try ControlCodec.decodeRequest(ControlCodec.encode(request))
        #expect(decoded == request)
    }

    @Test func commitWireFormatIsTheDocumentedOne() {
        let bytes = ControlCodec.encode(.configCommit(text: "a\n\nb\n", confirmMinutes: 10, user: "bob", comment: "c"))
        #expect(String(decoding: bytes, as: UTF8.self) == "config commit\nconfirm: 10\nuser: bob\ncomment: c\n\na\n\nb\n")
    }

    @Test func scriptsMayOmitTheFinalNewline() throws {
        #expect(try ControlCodec.decodeRequest(Array("show health".utf8)) == .show(topic: "health", argument: nil, format: .text))
    }

    @Test(arguments: [
        ("", ControlErrorCode.malformed),
        ("\n", .malformed),
        ("show\n", .malformed),
        ("show  version\n", .malformed),
        ("show VERSION\n", .malformed),
        ("show version\r\n", .malformed),
        ("show version\nformat: xml\n", .malformed),
        ("show version\nconfirm: 5\n", .malformed),
        ("show version\n\nbody", .malformed),
        ("frobnicate\n", .unknown),
        ("config drop\n", .unknown),
        ("config get staging\n", .malformed),
        ("config commit\n", .malformed),
        ("config commit\nconfirm: 0\n\nx", .malformed),
        ("config commit\nconfirm: 99999999999999999999\n\nx", .malformed),
        ("config commit\nconfirm: -1\n\nx", .malformed),
        ("config commit\nuser bob\n\nx", .malformed),
        ("config commit\nuser: a\nuser: b\n\nx", .malformed),
        ("rollback\n", .malformed),
        ("rollback 1000\n", .malformed),
        ("rollback x\n", .malformed),
        ("reboot now\n", .malformed),
        ("show ver\u{0}sion\n", .malformed),
    ])
    func malformedRequestsAreNamed(text: String, code: ControlErrorCode) {
        #expect(throws: ControlProtocolError.self) { try ControlCodec.decodeRequest(Array(text.utf8)) }
        do {
            _ = try ControlCodec.decodeRequest(Array(text.utf8))
        } catch {
            #expect(error.code == code, "\(text.debugDescription): \(error)")
        }
    }

    @Test func oversizeAndInvalidBytesAreRefused() {
        let big = ControlCodec.encode(.configCommit(text: String(repeating: "x", count: ControlLimits.maxRequestBytes),
                                                    confirmMinutes: nil, user: nil, comment: nil))
        #expect(throws: ControlProtocolError(.tooLarge, "request exceeds \(ControlLimits.maxRequestBytes) bytes")) {
            try ControlCodec.decodeRequest(big)
        }
        #expect(throws: ControlProtocolError.self) { try ControlCodec.decodeRequest([0x73, 0x68, 0xFF, 0x0A]) }
        let longLine = Array(("show " + String(repeating: "a", count: 2000)).utf8)
        #expect(throws: ControlProtocolError.self) { try ControlCodec.decodeRequest(longLine) }
        let manyHeaders = Array(("config commit\n" + String(repeating: "user: a\n", count: 40) + "\nx").utf8)
        #expect(throws: ControlProtocolError.self) { try ControlCodec.decodeRequest(manyHeaders) }
    }

    @Test func repliesSurviveTheirEncoding() throws {
        for reply: ControlReply in [.ok(""), .ok("version=1.0\nrevision=abc\n"), .error(.denied, "no"),
                                    .error(.invalid, "eth1: address 192.0.2.5/24: File exists")] {
            #expect(try ControlCodec.decodeReply(ControlCodec.encode(reply)) == reply)
        }
        // Multi-line error messages are folded onto the status line.
        #expect(try ControlCodec.decodeReply(ControlCodec.encode(.error(.failed, "a\nb"))) == .error(.failed, "a b"))
        #expect(throws: ControlProtocolError.self) { try ControlCodec.decodeReply(Array("error nonsense x\n".utf8)) }
        #expect(throws: ControlProtocolError.self) { try ControlCodec.decodeReply(Array("hello\n".utf8)) }
    }

    @Test func onlyChangesNeedTheAdminRole() {
        #expect(!ControlRequest.show(topic: "health", argument: nil, format: .text).changesState)
        #expect(!ControlRequest.configGet(.running).changesState)
        #expect(ControlRequest.configCommit(text: "", confirmMinutes: nil, user: nil, comment: nil).changesState)
        #expect(ControlRequest.rollback(1).changesState)
        #expect(ControlRequest.reboot.changesState)
        #expect(ControlRequest.confirm.changesState)
        // Reading the history is an operator's; an old commit whole (rollback) an admin's.
        #expect(!ControlRequest.configHistory.needsAdmin)
        #expect(ControlRequest.configGetCommit(1).needsAdmin && !ControlRequest.configGetCommit(1).changesState)
        #expect(ControlRequest.rollback(1).needsAdmin)
        #expect(!ControlRequest.configGet(.running).needsAdmin)
    }

    @Test func historyAndOldCommitRequestsAreStrict() throws {
        #expect(String(decoding: ControlCodec.encode(.configGetCommit(4)), as: UTF8.self) == "config get commit 4\n")
        #expect(try ControlCodec.decodeRequest(Array("config history".utf8)) == .configHistory)
        for bad in ["config get commit", "config get commit 1000", "config get commit -1", "config get commit x",
                    "config history 1", "config get commit 1 2", "config history\nformat: kv\n"] {
            #expect(throws: ControlProtocolError.self, "\(bad)") { try ControlCodec.decodeRequest(Array(bad.utf8)) }
        }
    }

    @Test func historyEntriesSurviveTheirEncoding() {
        let entries = [
            ControlCommitEntry(sequence: 12, time: 1_795_000_000, confirmDeadline: 1_795_000_600, revertTo: 11,
                               user: "alice (uid 1001)", comment: "vlan 100"),
            ControlCommitEntry(sequence: 11, time: 1_794_000_000, confirmDeadline: nil, revertTo: nil, user: "pytest", comment: ""),
            ControlCommitEntry(sequence: 0, time: 0, confirmDeadline: nil, revertTo: nil, user: "factory", comment: "default"),
        ]
        let text = ControlCommitEntry.encode(entries)
        #expect(text.hasPrefix("12\t1795000000\t1795000600\t11\talice (uid 1001)\tvlan 100\n11\t1794000000\t-\t-\tpytest\t\n"))
        #expect(ControlCommitEntry.decode(text) == entries)
        // A TAB or newline in a comment cannot break the format.
        let odd = ControlCommitEntry(sequence: 1, time: 2, confirmDeadline: nil, revertTo: nil, user: "a\tb", comment: "x\ny\tz")
        #expect(ControlCommitEntry.decode(ControlCommitEntry.encode([odd])) ==
                [ControlCommitEntry(sequence: 1, time: 2, confirmDeadline: nil, revertTo: nil, user: "a b", comment: "x y z")])
        for bad in ["1\t2\t-\t-\tuser\n", "x\t2\t-\t-\tu\tc\n", "1\t2\t?\t-\tu\tc\n", "1\t99999999999999999999\t-\t-\tu\tc\n",
                    "-1\t2\t-\t-\tu\tc\n",
                    // Found by FuzzControlRequest: a TAB (or CR) inside the comment.
                    "3\t1\t-\t-\tsystem\tautomatic\t1\n", "3\t1\t-\t-\tsystem\tx\ry\n"] {
            #expect(ControlCommitEntry.decode(bad) == nil, "\(bad)")
        }
        #expect(ControlCommitEntry.decode("") == [])
    }

    @Test func rolesComeFromGroups() {
        let policy = ControlAccessPolicy(adminGroups: [900], operatorGroups: [901])
        #expect(policy.role(for: ControlCaller(pid: 1, uid: 0, gid: 0, groups: [])) == .admin)
        #expect(policy.role(for: ControlCaller(pid: 1, uid: 1000, gid: 100, groups: [5, 900])) == .admin)
        #expect(policy.role(for: ControlCaller(pid: 1, uid: 1000, gid: 900, groups: [])) == .admin)
        #expect(policy.role(for: ControlCaller(pid: 1, uid: 1000, gid: 100, groups: [901])) == .operator)
        #expect(policy.role(for: ControlCaller(pid: 1, uid: 1000, gid: 100, groups: [5])) == nil)
        let strict = ControlAccessPolicy(adminGroups: [900], operatorGroups: [901], rootIsAdmin: false)
        #expect(strict.role(for: ControlCaller(pid: 1, uid: 0, gid: 0, groups: [])) == nil)
    }
}
