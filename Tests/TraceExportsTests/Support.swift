// Running the third-party validators (Python with Perfetto's proto, jsonschema; headless Chromium).
import Foundation
import TraceExports
import TraceReader

enum Repo {
    /// The repository's root (this file is Tests/TraceExportsTests/Support.swift).
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static func validator(_ name: String) -> String { root + "/Tests/TraceExportsTests/validators/" + name }

    /// speedscope's published schema: shared/ beside the clone (CI), else the copy in the fixtures.
    static var speedscopeSchema: String {
        let shared = root + "/../shared/schemas/speedscope-file-format-schema.json"
        if FileManager.default.fileExists(atPath: shared) { return shared }
        return root + "/Tests/TraceExportsTests/Fixtures/speedscope-file-format-schema.json"
    }

    /// An executable product next to the test bundle (.build/<triple>/debug/NAME).
    static func executable(_ name: String) -> String? {
        var dir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<3 {
            let candidate = dir.appendingPathComponent(name).path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }
}

struct ToolResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs a program to completion (no shell), with optional extra environment.
func runTool(_ args: [String], environment: [String: String] = [:], timeout: TimeInterval = 120) throws -> ToolResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: args[0].hasPrefix("/") ? args[0] : "/usr/bin/env")
    p.arguments = args[0].hasPrefix("/") ? Array(args.dropFirst()) : args
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    p.environment = env
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    try p.run()
    // Read both pipes while the tool runs so a large output cannot block it.
    nonisolated(unsafe) var outData = Data(), errData = Data()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
        outData = out.fileHandleForReading.readDataToEndOfFile(); group.leave()
    }
    group.enter()
    DispatchQueue.global().async {
        errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave()
    }
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { usleep(10_000) }
    if p.isRunning { p.terminate() }
    p.waitUntilExit()
    group.wait()
    return ToolResult(
        status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
        stderr: String(decoding: errData, as: UTF8.self))
}

/// Runs a Python validator and returns its JSON summary (nil with the message in `error` on failure).
func validate(_ script: String, _ args: [String]) throws -> [String: Any] {
    let r = try runTool(["python3", Repo.validator(script)] + args)
    guard let obj = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] else {
        return ["error": "validator printed no JSON (status \(r.status)): \(r.stdout.prefix(500)) \(r.stderr.prefix(2000))"]
    }
    return obj
}

func export(
    _ trace: String, _ format: ExportFormat, to out: String, grouping: StackGrouping = .callback,
    weight: StackWeight = .busy
) throws -> ExportSummary {
    let reader = try TraceReader(path: trace)
    return try TraceExport.run(reader: reader, format: format, outputPath: out, grouping: grouping, weight: weight)
}
