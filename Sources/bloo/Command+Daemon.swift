import Daemon
import Log

/// `bloo daemon`: the appliance service. Logic lives in the Daemon module.
enum DaemonCommand {
    static let usage = "bloo daemon [--config-dir DIR] [--control-socket PATH] [--run-dir DIR] [--user NAME|UID[:GID]] "
        + "[--admin-group GROUP] [--operator-group GROUP] [--realtime-priority 1-99] [--stop-deadline SECONDS]"

    static func run(_ words: [String]) throws -> Int32 {
        let arguments = try Arguments(words, command: "daemon", options: [
            "config-dir", "control-socket", "run-dir", "user", "admin-group", "operator-group",
            "realtime-priority", "stop-deadline", "confirm-unit-seconds",
        ])
        guard arguments.positionals.isEmpty else { throw UsageError("daemon: takes no positional arguments") }
        var options = DaemonOptions()
        if let value = arguments.value("config-dir") { options.configDirectory = value }
        if let value = arguments.value("control-socket") { options.controlSocket = value }
        if let value = arguments.value("run-dir") { options.runDirectory = value }
        options.serviceUser = arguments.value("user")
        if let value = arguments.value("admin-group") { options.adminGroup = value }
        if let value = arguments.value("operator-group") { options.operatorGroup = value }
        options.realtimePriority = try arguments.integer("realtime-priority", command: "daemon", range: 1...99)
        if let seconds = try arguments.integer("stop-deadline", command: "daemon", range: 1...60) {
            options.stopDeadlineSeconds = seconds
        }
        if let seconds = try arguments.integer("confirm-unit-seconds", command: "daemon", range: 1...60) {
            options.confirmUnitSeconds = Int64(seconds)
        }
        // A stalled console (init gives the daemon /dev/console) must cost log lines, not
        // calls: the workers log too.
        LogSink.makeStandardErrorNonBlocking()
        return Daemon(options: options, services: [TunnelService(cdrPath: options.cdrFile), LabService()]).run()
    }
}
