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

    /// The shared block of random words is handed out under its lock: ids made at once on many
    /// threads, across many refills, are all distinct.
    @Test func idsMadeConcurrentlyAreDistinct() async {
        let perTask = 2_000, tasks = 8
        let ids = await withTaskGroup(of: [String].self) { group in
            for _ in 0..<tasks { group.addTask { (0..<perTask).map { _ in ImageID.generate() } } }
            var all: [String] = []
            for await batch in group { all += batch }
            return all
        }
        #expect(ids.count == perTask * tasks)
        #expect(Set(ids).count == perTask * tasks)
    }

    /// Words come from the system generator: over a few blocks, no word repeats and the bits are
    /// balanced (each of the 64 bit positions set in 35–65 % of 4,096 words).
    @Test func randomWordsAreFreshAcrossBlocks() {
        var words: [UInt64] = []
        for _ in 0..<2_048 {
            let (a, b) = RandomBytes.shared.next128()
            words += [a, b]
        }
        #expect(Set(words).count == words.count)
        for bit in 0..<64 {
            let set = words.filter { $0 >> UInt64(bit) & 1 == 1 }.count
            #expect((1_434...2_662).contains(set), "bit \(bit) set in \(set) of \(words.count) words")
        }
    }

    @Test func validityIsTheHyphenatedForm() {
        #expect(ImageID.isValid("6f3a5d66-2c38-4c36-9f11-0ed5a1b2c3d4"))
        #expect(!ImageID.isValid("6f3a5d66-2c38-4c36-9f11-0ed5a1b2c3d"))     // 35
        #expect(!ImageID.isValid("6f3a5d66-2c38-4c36-9f11-0ed5a1b2c3d44"))   // 37
        #expect(!ImageID.isValid("6f3a5d66+2c38-4c36-9f11-0ed5a1b2c3d4"))    // separator
        #expect(!ImageID.isValid("6f3a5d66-2c38-4c36-9f11-0ed5a1b2c3dg"))    // not hex
        #expect(!ImageID.isValid("6f3a5d66-2c38-4c36-9f11-0ed5a1b2c3é"))     // 36 bytes, 35 characters
        #expect(!ImageID.isValid(""))
    }
}
