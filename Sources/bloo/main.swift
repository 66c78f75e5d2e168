// Entry point of the multi-call binary. Everything else lives in the modules;
// this target only routes argv to a command.
import Glibc

exit(Dispatcher.run(arguments: CommandLine.arguments))
