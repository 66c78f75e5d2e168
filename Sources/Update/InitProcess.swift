// `bloo init`: PID 1 of the initramfs. Mounts the kernel filesystems, loads the board's
// modules, chooses a slot from the boot state, mounts it read-only with /data and a
// tmpfs, and switches root to busybox init. It never returns; on a fatal error it says
// why on the console and reboots, so a box never hangs in the initramfs.
import CBoot
import Glibc

public enum InitProcess {
    static let newRoot = "/newroot"

    static func say(_ text: String) {
        var line = "bloo init: " + text + "\n"
        line.withUTF8 { _ = write(STDOUT_FILENO, $0.baseAddress, $0.count) }
    }

    static func mountOrSay(_ source: String, _ target: String, _ type: String, _ flags: UInt, _ data: String? = nil) -> Bool {
        mkdir(target, 0o755)
        let rc = data.map { mount(source, target, type, flags, $0) } ?? mount(source, target, type, flags, nil)
        if rc != 0 {
            say("cannot mount \(source) on \(target) (\(type)): \(String(cString: strerror(errno)))")
            return false
        }
        return true
    }

    static func fatal(_ text: String) -> Never {
        say("FATAL: \(text); rebooting in 5 s")
        sleep(5)
        _ = cboot_reboot()
        while true { pause() }
    }

    public static func run() -> Never {
        _ = mountOrSay("proc", "/proc", "proc", UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC))
        _ = mountOrSay("sysfs", "/sys", "sysfs", UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC))
        _ = mountOrSay("devtmpfs", "/dev", "devtmpfs", UInt(MS_NOSUID), "mode=0755")
        // The initramfs carries no device nodes (it is built without root): take the console now.
        let console = open("/dev/console", O_RDWR)
        if console >= 0 {
            for fd in Int32(0)...2 { dup2(console, fd) }
            if console > 2 { close(console) }
        }
        var board: Board
        do { board = try Board.load() } catch { fatal("\(error)") }
        let commandLine = (try? FileIO.readText("/proc/cmdline", limit: 4096)) ?? ""
        board.apply(commandLine: commandLine)

        for module in board.modules {
            let fd = open(module, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { say("module \(module) missing"); continue }
            if cboot_finit_module(fd) != 0, errno != EEXIST {
                say("cannot load \(module): \(String(cString: strerror(errno)))")
            }
            close(fd)
        }
        for device in [board.bootState, board.slotA, board.slotB, board.data] {
            guard waitFor(device, seconds: 10) else { fatal("\(device) did not appear") }
        }

        let store = BootStateStore(path: board.bootState)
        let current: BootState
        do {
            current = try store.read()
        } catch {
            fatal("cannot read the boot state: \(error)")
        }
        var (slot, chosen) = BootControl.chooseSlot(current)
        var written: BootState
        do { written = try store.write(chosen, after: current) } catch { fatal("cannot write the boot state: \(error)") }
        if chosen.event != current.event { say(chosen.event) }
        say("booting slot \(written.describe(slot))\(written.trial == slot ? " on trial" : "")")

        if !mountOrSay(board.device(of: slot), newRoot, "squashfs", UInt(MS_RDONLY)) {
            guard written.trial == slot else { fatal("the good slot \(slot.rawValue) does not mount") }
            chosen = BootControl.trialUnbootable(written, reason: "its root filesystem did not mount")
            do { written = try store.write(chosen, after: written) } catch { fatal("cannot write the boot state: \(error)") }
            say(chosen.event)
            slot = chosen.good
            guard mountOrSay(board.device(of: slot), newRoot, "squashfs", UInt(MS_RDONLY)) else {
                fatal("the good slot \(slot.rawValue) does not mount either")
            }
        }
        if !mountOrSay(board.data, newRoot + "/data", board.dataFilesystem, UInt(MS_NOSUID | MS_NODEV)) {
            say("continuing without /data: configuration and keys fall back to the defaults")
        }
        _ = mountOrSay("tmpfs", newRoot + "/run", "tmpfs", UInt(MS_NOSUID | MS_NODEV), "mode=0755,size=16m")
        _ = mountOrSay("tmpfs", newRoot + "/tmp", "tmpfs", UInt(MS_NOSUID | MS_NODEV), "mode=1777,size=32m")
        for path in ["/dev", "/proc", "/sys"] where mount(path, newRoot + path, nil, UInt(MS_MOVE), nil) != 0 {
            say("cannot move \(path): \(String(cString: strerror(errno)))")
        }
        // Free the initramfs (it lives in RAM) before leaving it.
        removeTree("/", keep: newRoot)
        guard chdir(newRoot) == 0, mount(".", "/", nil, UInt(MS_MOVE), nil) == 0, chroot(".") == 0, chdir("/") == 0 else {
            fatal("cannot switch root: \(String(cString: strerror(errno)))")
        }
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/sbin/init"), nil]
        execv("/sbin/init", argv)
        fatal("cannot start /sbin/init: \(String(cString: strerror(errno)))")
    }

    static func waitFor(_ path: String, seconds: Int) -> Bool {
        for _ in 0..<(seconds * 20) {
            if access(path, F_OK) == 0 { return true }
            usleep(50_000)
        }
        return false
    }

    /// Deletes the initramfs's files, staying on its own filesystem (mount points are skipped).
    static func removeTree(_ directory: String, keep: String) {
        var rootStat = stat()
        guard lstat(directory, &rootStat) == 0, let dir = opendir(directory) else { return }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(dir)
        for name in names {
            let path = directory == "/" ? "/" + name : directory + "/" + name
            if path == keep { continue }
            var info = stat()
            guard lstat(path, &info) == 0, info.st_dev == rootStat.st_dev else { continue }
            if (info.st_mode & S_IFMT) == S_IFDIR {
                removeTree(path, keep: keep)
                rmdir(path)
            } else {
                unlink(path)
            }
        }
    }
}
