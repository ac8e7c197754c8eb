import Testing

@testable import TraceSymbols

/// Real symbols of a Tokio server built by rustc 1.95 (legacy `_ZN…17h<hash>E` for most crates, v0 `_R…` for
/// std and core); each expected name is binutils' c++filt output without the hashes.
@Suite struct RustNamesTests {
    @Test func legacyNamesReadAsRustPathsWithoutTheirHash() {
        #expect(Demangle.name("_ZN2tk8burn_cpu17h475435a258186d6cE") == "tk::burn_cpu")
        // The LTO copy's ".llvm.<n>" names the same function.
        #expect(
            Demangle.name(
                "_ZN2tk11mutex_tasks28_$u7b$$u7b$closure$u7d$$u7d$28_$u7b$$u7b$closure$u7d$$u7d$17h0d018f5ba01a8eeeE.llvm.4642909742541340472"
            ) == "tk::mutex_tasks::{{closure}}::{{closure}}")
        #expect(
            Demangle.name("_ZN5tokio7runtime4task4core17Core$LT$T$C$S$GT$4poll17h50487428d6397b84E")
                == "tokio::runtime::task::core::Core<T,S>::poll")
        #expect(
            Demangle.name(
                "_ZN79_$LT$alloc..vec..drain..Drain$LT$T$C$A$GT$$u20$as$u20$core..ops..drop..Drop$GT$4drop17h0ee4f463a3335141E"
            ) == "<alloc::vec::drain::Drain<T,A> as core::ops::drop::Drop>::drop")
        // C++ stays C++'s: no hash as its last name.
        #expect(Demangle.name("_ZN2v88internal9Execution4CallEPNS0_7IsolateE") == "v8::internal::Execution::Call")
    }

    @Test func v0NamesReadAsRustPaths() {
        #expect(Demangle.name("_RNvNtNtCsjrHSEGnQ3l9_3std6thread9functions5sleep") == "std::thread::functions::sleep")
        #expect(
            Demangle.name("_RINvNtCsjrHSEGnQ3l9_3std2io19default_read_to_endNtNtB4_2fs4FileEB4_")
                == "std::io::default_read_to_end::<std::fs::File>")
        #expect(
            Demangle.name("_RNvXs1h_NtCsgEmfK2I1SDS_4core3fmtQShNtB6_5Debug3fmtCsgY6Mt91CT9J_14rustc_demangle")
                == "<&mut [u8] as core::fmt::Debug>::fmt")
        #expect(
            Demangle.name(
                "_RINvMs0_NtNtNtCsjrHSEGnQ3l9_3std12backtrace_rs9symbolize5gimliNtB6_5Cache11with_globalNCNvB6_7resolves_0EBc_"
            ) == "<std::backtrace_rs::symbolize::gimli::Cache>::with_global::<std::backtrace_rs::symbolize::gimli::resolve::{closure#1}>")
        #expect(
            Demangle.name("_RNvXs1_NtCsgEmfK2I1SDS_4core3anyDNtB5_3AnyNtNtB7_6marker4SyncNtBG_4SendEL_NtNtB7_3fmt5Debug3fmt")
                == "<dyn core::any::Any + core::marker::Sync + core::marker::Send as core::fmt::Debug>::fmt")
        #expect(
            Demangle.name("_RINvNtCsgEmfK2I1SDS_4core6escape14escape_unicodeKja_ECsgY6Mt91CT9J_14rustc_demangle")
                == "core::escape::escape_unicode::<10>")
    }

    /// v0 back references as a name could repeat a type: each tuple holds the previous one twice.
    static func doublingTuples(_ count: Int) -> String {
        func base62(_ v: Int) -> String {
            if v == 0 { return "_" }
            let digits = Array("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
            var x = v - 1
            var s = ""
            repeat {
                s = String(digits[x % 62]) + s
                x /= 62
            } while x > 0
            return s + "_"
        }
        var body = "INvC1a1f"
        var previous = body.utf8.count
        body += "u"
        for _ in 0..<count {
            let here = body.utf8.count
            body += "TB" + base62(previous) + "B" + base62(previous) + "E"
            previous = here
        }
        return "_R" + body + "E"
    }

    @Test func damagedOrHostileNamesStayAsTheyAre() {
        #expect(Self.doublingTuples(2) == "_RINvC1a1fuTB7_B7_ETB8_B8_EE")  // c++filt: a[0]::f::<(), ((), ()), …>
        #expect(Demangle.name(Self.doublingTuples(2)) == "a::f::<(), ((), ()), (((), ()), ((), ()))>")
        // 2^40 units: the output bound gives up at once.
        let bomb = Self.doublingTuples(40)
        #expect(Demangle.name(bomb) == bomb)
        for hostile in [
            "_RNvNtNtCsjrHSEGnQ3l9_3std6thr",  // cut short
            "_RNvB9_3foo",  // a back reference forward
            "_RNvB_3foo",  // a back reference to itself
            "_RNvC3foo99999999999999999999bar",  // a length beyond the name
            "_R" + String(repeating: "N", count: 5000) + "C1a",  // nested beyond any real name
            "_ZN2tk8burn_cpu17h475435a258186d6cX",  // no end
            "_ZN3$u0$17h475435a258186d6cE",  // a control character
            "_R",
        ] {
            #expect(Demangle.name(hostile) == hostile)
        }
    }
}
