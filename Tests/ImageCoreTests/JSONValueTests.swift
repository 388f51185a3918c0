import ImageCore
import Testing

@Suite struct JSONValueTests {
    @Test func parsesEveryKindAndKeepsIntegersApartFromFloats() throws {
        let v = try JSONValue.parse(#" {"a": 1, "b": -2.5, "c": 1e3, "d": true, "e": null, "f": [ "x", {} ], "g": "é\n\u00e9\ud83d\ude00"} "#)
        #expect(v["a"] == .int(1))
        #expect(v["b"] == .double(-2.5))
        #expect(v["c"] == .double(1000))
        #expect(v["d"] == .bool(true))
        #expect(v["e"] == .null)
        #expect(v["f"] == .array([.string("x"), .object([])]))
        #expect(v["g"] == .string("é\né😀"))
        #expect(try JSONValue.parse("9223372036854775807") == .int(Int64.max))
        #expect(try JSONValue.parse("9223372036854775808") == .double(9223372036854775808))
    }

    @Test func duplicateKeysKeepTheLastValue() throws {
        let v = try JSONValue.parse(#"{"k": 1, "k": 2}"#)
        #expect(v == .object([("k", .int(2))]))
    }

    @Test(arguments: [
        "", "   ", "{", "}", "[1,]", "{\"a\":}", "{\"a\" 1}", "{a: 1}", "'x'", "01", "1.", ".5", "-", "1e", "tru", "nul",
        "\"unterminated", "\"bad \\x escape\"", "\"\\ud800\"", "\"\\udc00\"", "\"ctl \u{01}\"", "[1] [2]", "NaN", "Infinity", "1e999",
    ])
    func rejectsMalformedInput(text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(text) }
    }

    /// Found while fuzzing the parser: each member searched the members before it, so a 350 KB object of
    /// 20 000 short keys took 48 s of CPU in a debug build (a 1 MiB body, minutes). Now one lookup each.
    @Test func manyMembersParseInLinearTime() throws {
        var text = "{"
        for i in 0 ..< 100_000 { text += "\"k\(i)\":\(i)," }
        text += "\"k7\":\"again\"}"
        let clock = ContinuousClock()
        var value: JSONValue = .null
        let elapsed = try clock.measure { value = try JSONValue.parse(text) }
        guard case .object(let members) = value else { Issue.record("not an object"); return }
        #expect(members.count == 100_000 && members[7] == ("k7", .string("again")) && members[8].0 == "k8")
        #expect(elapsed < .seconds(30), "parsing took \(elapsed)")
    }

    @Test func rejectsInvalidUTF8() {
        #expect(throws: JSONParseError.self) { try JSONValue.parse([0x22, 0xFF, 0xFE, 0x22]) }
    }

    @Test func limitsNestingDepth() throws {
        let ok = String(repeating: "[", count: JSONValue.maxDepth) + String(repeating: "]", count: JSONValue.maxDepth)
        _ = try JSONValue.parse(ok)
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(deep) }
    }

    @Test func writerRoundTripsAndEscapes() throws {
        let original = JSONValue.object([
            ("s", .string("quote \" backslash \\ newline \n tab \t ctl \u{01} ☃")), ("i", .int(-42)), ("b", .bool(false)),
            ("n", .null), ("a", .array([.int(1), .string("x")])),
        ])
        let text = original.serialized
        #expect(text.contains(#"\u0001"#) && text.contains(#"\""#) && text.contains(#"\\"#))
        #expect(try JSONValue.parse(text) == original)
    }

    /// The writer's word-at-a-time scan against a byte-by-byte reference: every special byte at
    /// every position of strings longer and shorter than a word, beside multi-byte characters.
    @Test func writerEscapesAtEveryPosition() throws {
        func reference(_ s: String) -> String {
            var out = "\""
            for c in s.utf8 {
                switch c {
                case 0x22: out += "\\\""
                case 0x5C: out += "\\\\"
                case 0x0A: out += "\\n"
                case 0x0D: out += "\\r"
                case 0x09: out += "\\t"
                case ..<0x20: out += "\\u00" + String(c >> 4, radix: 16) + String(c & 15, radix: 16)
                default: out += String(UnicodeScalar(c))  // ASCII here; multi-byte added below
                }
            }
            return out + "\""
        }
        for length in 0...19 {
            for position in 0..<max(length, 1) {
                for special: UInt8 in [0x00, 0x01, 0x09, 0x0A, 0x0D, 0x1F, 0x22, 0x5C] {
                    var bytes = [UInt8](repeating: UInt8(ascii: "a"), count: length)
                    if length > 0 { bytes[position] = special }
                    let s = String(decoding: bytes, as: UTF8.self)
                    var w = JSONWriter()
                    w.string(s)
                    #expect(String(decoding: w.bytes, as: UTF8.self) == reference(s), "length \(length) at \(position)")
                    #expect(try JSONValue.parse(String(decoding: w.bytes, as: UTF8.self)) == .string(s))
                }
            }
        }
        // Bytes above 0x7F (UTF-8 continuation and lead bytes) are never escaped.
        let wide = "☃é\"☃☃☃\\x☃"
        var w = JSONWriter()
        w.string(wide)
        #expect(String(decoding: w.bytes, as: UTF8.self) == #""☃é\"☃☃☃\\x☃""#)
    }

    @Test func escapeScanIsExact() {
        func reference(_ w: UInt64) -> Bool {
            (0..<8).contains { i in
                let c = UInt8(truncatingIfNeeded: w >> (8 * UInt64(i)))
                return c < 0x20 || c == 0x22 || c == 0x5C
            }
        }
        var generator = SystemRandomNumberGenerator()
        var words: [UInt64] = (0..<20_000).map { _ in generator.next() }
        // Every byte value at every position of a word otherwise safe ('a'), and of one all 0xFF.
        for base: UInt64 in [0x6161_6161_6161_6161, 0xFFFF_FFFF_FFFF_FFFF] {
            for i in 0..<8 {
                for c in 0...255 {
                    let shift = 8 * UInt64(i)
                    words.append(base & ~(0xFF << shift) | UInt64(c) << shift)
                }
            }
        }
        let wrong = words.filter { JSONWriter.mayNeedEscape($0) != reference($0) }
        #expect(wrong.isEmpty, "\(wrong.prefix(5).map { String($0, radix: 16) })")
    }

    @Test(arguments: [Int64.min, Int64.min + 1, -10, -1, 0, 1, 9, 10, 99, 100, 1_073_741_824, Int64.max])
    func writerWritesIntegers(_ v: Int64) {
        var w = JSONWriter()
        w.int(v)
        #expect(String(decoding: w.bytes, as: UTF8.self) == String(v))
    }
}

@Suite struct TimestampTests {
    @Test(arguments: [
        ("1970-01-01T00:00:00Z", Int64(0)),
        ("2026-03-01T12:34:56Z", Int64(1_772_368_496)),
        ("2026-03-01T12:34:56", Int64(1_772_368_496)),
        ("2026-03-01T12:34:56.123456Z", Int64(1_772_368_496)),
        ("2026-03-01T14:34:56+02:00", Int64(1_772_368_496)),
        ("2026-03-01T10:34:56-0200", Int64(1_772_368_496)),
        ("2026-03-01", Int64(1_772_323_200)),
        ("2000-02-29T23:59:59Z", Int64(951_868_799)),
    ])
    func parses(text: String, seconds: Int64) {
        #expect(Timestamp.parse(text) == seconds)
    }

    @Test(arguments: ["", "yesterday", "2026-13-01", "2026-01-32", "2026-01-01T25:00:00", "2026-01-01T00:00:00Q", "2026-1-1", "2026-01-01T00:00:00Z extra"])
    func refuses(text: String) {
        #expect(Timestamp.parse(text) == nil)
    }

    @Test func formatsAndRoundTrips() {
        #expect(Timestamp.format(0) == "1970-01-01T00:00:00Z")
        #expect(Timestamp.format(1_772_368_496) == "2026-03-01T12:34:56Z")
        #expect(Timestamp.formatNaive(1_772_368_496) == "2026-03-01T12:34:56.000000")
        for t in stride(from: Int64(-86_400 * 400), through: 86_400 * 365 * 200, by: 86_400 * 37 + 3_671) {
            #expect(Timestamp.parse(Timestamp.format(t)) == t)
        }
    }
}

@Suite struct PrincipalTests {
    @Test func impliedRolesAndCase() {
        let admin = Principal(userId: "u", projectId: "p", roles: ["Admin"])
        #expect(admin.isAdmin && admin.isMember && admin.isReader)
        let member = Principal(userId: "u", projectId: "p", roles: ["MEMBER"])
        #expect(!member.isAdmin && member.isMember && member.isReader)
        let reader = Principal(userId: "u", projectId: "p", roles: ["reader"])
        #expect(!reader.isMember && reader.isReader)
        let none = Principal(userId: "u", projectId: "p", roles: ["observer"])
        #expect(!none.isReader)
    }

    @Test func imageIDs() {
        #expect(ImageID.isValid("6f3a5d66-2c38-4c36-9f11-0ed5a1b2c3d4"))
        #expect(ImageID.isValid("6F3A5D66-2C38-4C36-9F11-0ED5A1B2C3D4"))
        #expect(!ImageID.isValid("6f3a5d662c384c369f110ed5a1b2c3d4"))
        #expect(!ImageID.isValid("6f3a5d66-2c38-4c36-9f11-0ed5a1b2c3dg"))
        #expect(!ImageID.isValid("6f3a5d66-2c38-4c36-9f11-0ed5a1b2c3d4 "))
        let generated = ImageID.generate()
        #expect(ImageID.isValid(generated) && generated == generated.lowercased())
    }
}
