import ImageCore
import Testing
@testable import ImageData

/// glance-download's request parameters and its reading of the remote image record, without a network.
@Suite struct GlanceDownloadTests {
    static let uuid = "36D4B546-64A2-4BB9-BDD0-BA676AA48F2C"

    @Test func parametersAsGlanceChecksThem() throws {
        let ok = try GlanceDownload.parameters(try JSONValue.parse(#"{"glance_image_id":"\#(Self.uuid)","glance_region":"RegionTwo"}"#))
        #expect(ok.imageId == Self.uuid.lowercased() && ok.region == "RegionTwo" && ok.interface == "public")
        let cases = [(#"{"glance_image_id":"\#(Self.uuid)"}"#, "'glance_region' needs to be set"),
                     (#"{"glance_region":"r"}"#, "'glance_image_id' needs to be set"),
                     (#"{"glance_region":"r","glance_image_id":"foo"}"#, "Remote image id does not look like a UUID: foo"),
                     (#"{"glance_region":5,"glance_image_id":"\#(Self.uuid)"}"#, "'glance_region' must be a string"),
                     (#"{"glance_region":"r","glance_image_id":"\#(Self.uuid)","glance_service_interface":1}"#, "must be a string")]
        for (text, message) in cases {
            do {
                _ = try GlanceDownload.parameters(try JSONValue.parse(text))
                Issue.record("\(text) was accepted")
            } catch let error as ImageError {
                #expect(error.kind == .badRequest && error.message.contains(message), "\(text): \(error.message)")
            }
        }
    }

    @Test func remoteRecordGivesFormatsPrefixedPropertiesAndDigests() throws {
        let doc = try JSONValue.parse(#"""
            {"status":"active","size":4,"checksum":"ABC","os_hash_algo":"sha512","os_hash_value":"def","disk_format":"qcow2",
             "container_format":"bare","hw_cpu_cores":"5","trait:X":"required","os_distro":"rhel","os_glance_import_task":"t",
             "speed":"88mph","os_version":"9"}
            """#)
        let remote = try GlanceDownload.Remote(doc, id: "x")
        #expect(remote.properties == ["hw_cpu_cores": "5", "trait:X": "required", "os_distro": "rhel"])
        var image = Image(id: "i", owner: "p", createdAt: 0, updatedAt: 0)
        image.properties["hw_cpu_cores"] = "1"
        image.properties["mine"] = "kept"
        remote.adopt(&image)
        #expect(image.diskFormat == "qcow2" && image.containerFormat == "bare")
        #expect(image.properties == ["hw_cpu_cores": "5", "trait:X": "required", "os_distro": "rhel", "mine": "kept"])

        let inspection = FormatInspection(detected: "raw", allMatched: ["raw"], virtualSize: nil, safetyFailure: nil)
        let good = IngestResult(size: 4, md5: "abc", hashAlgorithm: .sha512, hashValue: "def", inspection: inspection)
        try remote.verify(good)
        var badMD5 = good
        badMD5.md5 = "abd"
        #expect(throws: ImageError.self) { try remote.verify(badMD5) }
        var badHash = good
        badHash.hashValue = "dee"
        #expect(throws: ImageError.self) { try remote.verify(badHash) }
        var otherAlgo = badHash
        otherAlgo.hashAlgorithm = .sha256  // another algorithm cannot be compared: the MD5 decides
        try remote.verify(otherAlgo)
    }

    @Test func remoteImageMustBeActiveWithASize() throws {
        #expect(throws: ImageError.conflict("Source image status should be active instead of queued")) {
            _ = try GlanceDownload.Remote(try JSONValue.parse(#"{"status":"queued","size":null}"#), id: "x")
        }
        #expect(throws: ImageError.badRequest("Size attribute of remote image x could not be determined.")) {
            _ = try GlanceDownload.Remote(try JSONValue.parse(#"{"status":"active","size":null}"#), id: "x")
        }
    }
}
