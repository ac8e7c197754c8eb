// The `asynctrace` command: record, report, export, flamegraph, profile.
import ArgumentParser

@main
struct AsyncTraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "asynctrace",
        abstract: "Shows what an async program is doing, from the callback down to the syscall.",
        discussion: """
            Record a program, then read the trace:
              asynctrace record -o app.atrace -- ./app args
              asynctrace report app.atrace
            """,
        subcommands: [
            RecordCommand.self, DumpCommand.self, TopCommand.self, ReportCommand.self, ExportCommand.self, FlamegraphCommand.self,
            ProfileCommand.self,
        ]
    )
}
