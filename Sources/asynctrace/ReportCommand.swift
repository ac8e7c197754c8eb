import ArgumentParser

// Being built (issue 6).
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "report", abstract: "Summarize a trace (not implemented yet).")
    func run() throws { throw ValidationError("report is not implemented yet") }
}
