// The committed BPF skeleton was generated from the current bpf/ sources.
import Foundation
import KernelProbes
import Testing

@Suite struct SkeletonTests {
    @Test func committedSkeletonMatchesSources() throws {
        let script = packageRoot.appendingPathComponent("tools/check-bpf-skeleton.sh").path
        let check = try runTool("/bin/bash", [script])
        #expect(check.status == 0, "\(check.output)")
        let hash = try runTool("/bin/bash", [script, "--print-hash"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        // The library really contains that skeleton (not an older build of it).
        #expect(KernelProbeSession.skeletonSourceHash == hash)
    }
}
