import Testing

@Test func placeholderRecorderTests() { #expect(Bool(true)) }
