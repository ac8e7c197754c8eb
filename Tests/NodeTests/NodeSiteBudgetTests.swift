// Creation sites are budgeted (the first 64 resources of a type per thread, then 20 per 100 ms): a callback whose
// resource was made past the budget was listed with no 'created at' and nothing saying why, as if the trace had
// lost it. The preload marks such a resource when its callback runs long, and the report says so.
import Foundation
import Testing

@Suite(.serialized) struct NodeSiteBudgetTests {
    static let program = """
        for (let i = 0; i < 199; i++) setTimeout(() => {}, 5);
        setTimeout(function blocks() { const t = Date.now(); while (Date.now() - t < 30) {} }, 5);
        """

    @Test(arguments: [false, true]) func aCallbackPastTheSiteBudgetSaysWhyItHasNoSite(_ allSites: Bool) throws {
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        let record = ["--no-kernel"] + (allSites ? ["--node-all-sites"] : [])
        try withRecordedNodeScript(Self.program, file: "budget.js", node: node, record: record) { r in
            #expect(r.record.status == 0, "record: \(r.record.stderr)")
            let blocking = r.json["blocking"] as? [[String: Any]] ?? []
            let spin = try #require(blocking.first { $0["type"] as? String == "Timeout" }, "\(r.json["blocking"] ?? "absent")")
            let site = (spin["created_at"] as? [[String: Any]])?.first
            if allSites {
                #expect(site?["line"] as? Int == 2, "\(spin)")
                #expect(spin["created_at_missing"] is NSNull, "\(spin)")
            } else {
                #expect(site == nil, "\(spin)")
                let why = spin["created_at_missing"] as? String ?? ""
                #expect(why.contains("budget of sites was spent") && why.contains("--node-all-sites"), "\(spin)")
                let text = try runNodeTool([NodeRepo.executable("asynctrace"), "report", r.trace]).stdout
                #expect(text.contains("created at none recorded: made when the Node preload's budget of sites was spent"), "\(text)")
            }
        }
    }
}
