import HTTPTypes
import ImageCore
import Testing

/// Every malformed create gets Glance's status and error body, and creates nothing.
@Suite struct BadInputTests {
    static let longName = String(repeating: "n", count: 256)
    static let manyProps = (0..<129).map { "\"p\($0)\": \"v\"" }.joined(separator: ",")
    static let manyTags = (0..<129).map { "\"t\($0)\"" }.joined(separator: ",")

    static let createCases: [(String, HTTPResponse.Status, String)] = [
        ("{\"name\": ", .badRequest, "Malformed JSON"),
        ("{\"name\": \"x\"} trailing", .badRequest, "Malformed JSON"),
        ("[1, 2]", .badRequest, "JSON object"),
        ("\"just a string\"", .badRequest, "object or an array"),
        (String(repeating: "[", count: 100) + String(repeating: "]", count: 100), .badRequest, "Malformed JSON"),
        ("{\"name\": 5}", .badRequest, "'name'"),
        ("{\"name\": \"\(longName)\"}", .badRequest, "longer than 255"),
        ("{\"visibility\": \"bogus\"}", .badRequest, "'visibility'"),
        ("{\"visibility\": null}", .badRequest, "'visibility'"),
        ("{\"protected\": \"yes\"}", .badRequest, "'protected'"),
        ("{\"os_hidden\": 1}", .badRequest, "'os_hidden'"),
        ("{\"min_ram\": \"512\"}", .badRequest, "'min_ram'"),
        ("{\"min_ram\": 1.5}", .badRequest, "'min_ram'"),
        ("{\"min_disk\": -1}", .badRequest, "minimum"),
        ("{\"min_disk\": 99999999999}", .badRequest, "maximum"),
        ("{\"container_format\": \"wrong\"}", .badRequest, "'container_format'"),
        ("{\"disk_format\": \"wrong\"}", .badRequest, "'disk_format'"),
        ("{\"tags\": \"x\"}", .badRequest, "'tags'"),
        ("{\"tags\": [1]}", .badRequest, "'tags'"),
        ("{\"tags\": [\"\(longName)\"]}", .badRequest, "longer than 255"),
        // Lengths count code points, as Glance (Python's len) and JSON Schema's maxLength do: 200 "\r\n"
        // grapheme clusters are 400 characters (schemathesis found such a name accepted).
        ("{\"name\": \"\(String(repeating: "\\r\\n", count: 200))\"}", .badRequest, "longer than 255"),
        ("{\"name\": \"\(String(repeating: "e\\u0301", count: 200))\"}", .badRequest, "longer than 255"),
        ("{\"id\": \"not-a-uuid\"}", .badRequest, "'id'"),
        ("{\"id\": 5}", .badRequest, "'id'"),
        ("{\"os_distro\": 5}", .badRequest, "extra properties are strings"),
        ("{\"os_distro\": null}", .badRequest, "extra properties are strings"),
        ("{\"os_distro\": {\"a\": 1}}", .badRequest, "extra properties are strings"),
        ("{\"\(longName)\": \"v\"}", .badRequest, "1 to 255"),
        ("{\"ramdisk_id\": \"not-uuid\"}", .badRequest, "not a UUID"),
        ("{\"cinder_encryption_key_deletion_policy\": \"sometimes\"}", .badRequest, "not one of"),
        ("{\"big\": \"\(String(repeating: "v", count: 65_536))\"}", .badRequest, "longer than 65535"),
        ("{\"status\": \"active\"}", .forbidden, "read-only"),
        ("{\"checksum\": \"abc\"}", .forbidden, "read-only"),
        ("{\"size\": 10}", .forbidden, "read-only"),
        ("{\"os_hash_value\": \"abc\"}", .forbidden, "read-only"),
        ("{\"created_at\": \"2020-01-01T00:00:00Z\"}", .forbidden, "read-only"),
        ("{\"self\": \"x\"}", .forbidden, "read-only"),
        ("{\"direct_url\": \"x\"}", .forbidden, "read-only"),
        ("{\"stores\": \"x\"}", .forbidden, "read-only"),
        ("{\"locations\": []}", .forbidden, "reserved"),
        ("{\"deleted\": \"x\"}", .forbidden, "reserved"),
        ("{\"os_glance_foo\": \"x\"}", .forbidden, "reserved"),
        ("{\"visibility\": \"public\"}", .forbidden, "public"),
        ("{\"owner\": \"pb\"}", .forbidden, "owned by 'pb'"),
        ("{\(manyProps)}", .contentTooLarge, "properties exceeded"),
        ("{\"tags\": [\(manyTags)]}", .contentTooLarge, "tags exceeded"),
    ]

    @Test(arguments: createCases)
    func badCreateIsRefusedAndChangesNothing(body: String, status: HTTPResponse.Status, fragment: String) async throws {
        try await withAPI { api in
            let r = try await api.call(.post, "/v2/images", json: body)
            #expect(r.status == status, "\(body.prefix(80)): \(r.text.prefix(300))")
            let error = try r.json
            #expect(error["code"] == .string("\(status.code) \(error["title"]?.stringValue ?? "?")"))
            #expect(error["message"]?.stringValue?.contains(fragment) == true, "\(fragment) in \(r.text.prefix(300))")
            #expect(try await api.listIDs("", token: Tok.admin).isEmpty)
        }
    }

    @Test func emptyAndOversizeBodies() async throws {
        try await withAPI { api in
            let empty = try await api.call(.post, "/v2/images", body: "", contentType: "application/json")
            #expect(empty.status == .badRequest)
            #expect(try empty.json["message"]?.stringValue?.contains("Body expected") == true)

            let huge = "{\"description\": \"" + String(repeating: "x", count: 120_000) + "\"}"
            let r = try await api.call(.post, "/v2/images", json: huge)
            #expect(r.status == .contentTooLarge)
            #expect(try r.json["code"] == .string("413 Request Entity Too Large"))

            let patchTarget = try await api.create()
            let hugePatch = "[{\"op\": \"add\", \"path\": \"/d\", \"value\": \"" + String(repeating: "x", count: 120_000) + "\"}]"
            #expect(try await api.patch(patchTarget, hugePatch).status == .contentTooLarge)
            #expect(try await api.show(patchTarget)["d"] == nil)
            #expect(try await api.listIDs("", token: Tok.admin) == [patchTarget])
        }
    }

    static let patchCases: [(String, String)] = [
        ("{\"op\": \"replace\"}", "array"),
        ("[1]", "JSON objects"),
        ("[{\"path\": \"/name\", \"value\": \"x\"}]", "'op'"),
        ("[{\"op\": \"move\", \"path\": \"/name\", \"from\": \"/x\"}]", "Invalid operation"),
        ("[{\"op\": \"test\", \"path\": \"/name\", \"value\": \"x\"}]", "Invalid operation"),
        ("[{\"op\": 1, \"path\": \"/name\"}]", "Invalid operation"),
        ("[{\"op\": \"replace\", \"value\": \"x\"}]", "'path'"),
        ("[{\"op\": \"replace\", \"path\": \"/name\"}]", "\"value\""),
        ("[{\"op\": \"replace\", \"path\": \"name\", \"value\": \"x\"}]", "start with"),
        ("[{\"op\": \"replace\", \"path\": \"/tags/-\", \"value\": \"x\"}]", "Invalid JSON pointer"),
        ("[{\"op\": \"replace\", \"path\": \"//name\", \"value\": \"x\"}]", "adjacent"),
        ("[{\"op\": \"replace\", \"path\": \"/name/\", \"value\": \"x\"}]", "end with"),
        ("[{\"op\": \"replace\", \"path\": \"/na~2me\", \"value\": \"x\"}]", "~"),
        ("[{\"op\": \"replace\", \"path\": 5, \"value\": \"x\"}]", "Pointer must be a string"),
        ("[{\"op\": \"replace\", \"path\": \"/min_ram\", \"value\": -5}]", "minimum"),
        ("[{\"op\": \"replace\", \"path\": \"/visibility\", \"value\": \"everyone\"}]", "'visibility'"),
        ("[{\"op\": \"replace\", \"path\": \"/disk_format\", \"value\": \"floppy\"}]", "'disk_format'"),
        ("[{\"op\": \"add\", \"path\": \"/prop\", \"value\": 3}]", "extra properties are strings"),
        ("[{\"op\": \"add\", \"path\": \"/\(longName)\", \"value\": \"x\"}]", "1 to 255"),
    ]

    @Test(arguments: patchCases)
    func badPatchIs400AndChangesNothing(body: String, fragment: String) async throws {
        try await withAPI { api in
            let id = try await api.create(#"{"name": "n", "min_ram": 5}"#)
            let before = try await api.show(id)
            let r = try await api.patch(id, body)
            #expect(r.status == .badRequest, "\(body): \(r.text)")
            #expect(try r.json["message"]?.stringValue?.contains(fragment) == true, "\(fragment) in \(r.text)")
            #expect(try await api.show(id) == before)
        }
    }

    @Test func propertyQuotaOnPatch() async throws {
        try await withAPI { api in
            let props = (0..<128).map { "\"p\($0)\": \"v\"" }.joined(separator: ",")
            let id = try await api.create("{\(props)}")
            let r = try await api.patch(id, #"[{"op": "add", "path": "/one_more", "value": "x"}]"#)
            #expect(r.status == .contentTooLarge)
            #expect(try await api.show(id)["one_more"] == nil)
        }
    }
}
