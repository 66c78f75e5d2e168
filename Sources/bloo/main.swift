// Entry point of the multi-call binary. Everything else lives in the modules;
// this target only routes argv to a command.
import Glibc

// As process 1 of the initramfs /proc is not mounted yet, and the Swift runtime (which
// reads argv from /proc/self/cmdline) sees no arguments: that can only be `bloo init`.
let arguments = CommandLine.arguments.isEmpty && getpid() == 1 ? ["bloo-init"] : CommandLine.arguments
exit(Dispatcher.run(arguments: arguments))
