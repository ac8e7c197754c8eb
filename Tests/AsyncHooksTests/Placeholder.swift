import Testing

@Test func placeholderAsyncHooksTests() { #expect(Bool(true)) }
