import ArgumentParser

// Being built (issue 6 with the kernel probes of issue 5).
struct RecordCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "record", abstract: "Run a program and record a trace (not implemented yet).")
    func run() throws { throw ValidationError("record is not implemented yet") }
}
