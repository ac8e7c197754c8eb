import Testing

@Test func placeholderTraceReaderTests() { #expect(Bool(true)) }
