import Testing

@Test func placeholderKernelProbesTests() { #expect(Bool(true)) }
