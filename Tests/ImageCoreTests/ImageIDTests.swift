import Foundation
import ImageCore
import Testing

/// Generated ids are RFC 9562 version-4 UUIDs in lower case, distinct, and read back by Foundation.
@Suite struct ImageIDTests {
    @Test func generatedIDsAreDistinctLowerCaseVersion4UUIDs() {
        var seen = Set<String>()
        var highNibbles = Set<Character>()
        for _ in 0..<20_000 {
            let id = ImageID.generate()
            #expect(ImageID.isValid(id))
            #expect(id == id.lowercased())
            let chars = Array(id)
            #expect(chars[14] == "4", "version nibble of \(id)")
            #expect("89ab".contains(chars[19]), "variant nibble of \(id)")
            // Foundation parses it to the same value.
            #expect(UUID(uuidString: id)?.uuidString.lowercased() == id)
            highNibbles.insert(chars[0])
            seen.insert(id)
        }
        #expect(seen.count == 20_000)
        // The random bits are spread: every hex digit appears in the first position.
        #expect(highNibbles.count == 16)
    }
}
