import Hummingbird
import HummingbirdCore
import ImageCore

/// How the Danube handlers decode requests: pure functions (the fuzzer calls them too).
package enum DanubeRequests {
    /// `data` of a GET: the query parameters, as strings.
    package static func query(_ parameters: FlatDictionary<Substring, Substring>) -> [(String, JSONValue)] {
        parameters.map { (String($0.key), JSONValue.string(String($0.value))) }
    }

    /// `data` of the other methods: the JSON object body (`{}` when empty).
    package static func body(_ bytes: some Collection<UInt8>) throws -> [(String, JSONValue)] {
        if bytes.isEmpty { return [] }
        guard case .object(let members) = (try? JSONValue.parse(bytes)) ?? .null else {
            throw DanubeError(.badRequest, "Malformed request")
        }
        return members
    }

    /// The writable image fields of `data`, checked as Danube's serializer checks them: the fields
    /// for the image's document and the refusals (field → messages; an empty object when none).
    package static func fields(_ data: [(String, JSONValue)]) -> (document: [(String, JSONValue)], errors: JSONValue) {
        var v = DanubeValidation()
        let fields = DanubeFields(data, &v)
        return (fields.documentFields, v.result)
    }

    /// Why `name` cannot name a new image (empty when it can); nil when no route reaches it.
    package static func nameErrors(_ name: String) -> [String]? {
        guard DanubeImage.routable(name) else { return nil }
        return DanubeImage.nameErrors(name)
    }

    /// A manifest (IMGAPI v2) as an import reads it: uuid, version, ostype, size in MB, file size and
    /// sha1; the refusal's fields and messages when it cannot be imported.
    package static func manifest(_ json: JSONValue) -> Result<(uuid: String, version: String, ostype: Int64, sizeMB: Int64), ManifestRefusal> {
        do {
            let m = try DanubeImage.Manifest(json)
            return .success((m.uuid, m.version, m.ostype, m.sizeMB))
        } catch {
            return .failure(ManifestRefusal(result: error.result))
        }
    }

    package struct ManifestRefusal: Error {
        package let result: JSONValue
    }

    /// `order_by` of `GET /image/`: `name` or `created`, each may start with `-` or `+` (both descending).
    package static func sortOrder(_ orderBy: String?) throws -> [ImageListQuery.Sort] {
        var sort: [ImageListQuery.Sort] = []
        for field in (orderBy ?? "name").split(separator: ",") {
            // Danube's quirk: a leading `-` or `+` both mean descending.
            let descending = field.hasPrefix("-") || field.hasPrefix("+")
            let key = descending ? field.dropFirst() : field
            guard let k: ImageListQuery.SortKey = key == "name" ? .name : key == "created" ? .createdAt : nil else {
                throw DanubeError(.preconditionFailed, "Invalid order_by; Possible sort fields are: name, created")
            }
            sort.append(.init(k, descending ? .desc : .asc))
        }
        return sort
    }

    /// `disk_id` of snapshot → image: 1 to 64, a number or its text; 1 when absent.
    package static func diskId(_ given: JSONValue?) throws -> Int64 {
        guard let given else { return 1 }
        let n: Int64? = switch given { case .int(let i): i; case .string(let s): Int64(s); default: nil }
        guard let n, n >= 1, n <= 64 else { throw DanubeError(.preconditionFailed, "Invalid disk_id") }
        return n
    }

    /// Danube's lenient query booleans (the client sends Python's `True`/`False`).
    package static func flag(_ value: Substring?) -> Bool {
        value.map { DanubeFields.lenient(String($0)) ?? !$0.isEmpty } ?? false
    }

    /// The core id behind a real task id (`1e1u1-<uuid>`).
    package static func taskCoreId(_ taskId: String) -> String? { DanubeTaskID.coreId(taskId) }

    /// A remote IMGAPI's `GET /images` listing: the images with a valid uuid, newest first.
    package static func repositoryListing(_ bytes: [UInt8]) throws -> [(uuid: String, name: String, manifest: JSONValue)] {
        try DanubeImagestores.images(fromListing: bytes).map { ($0.uuid, $0.name, $0.manifest) }
    }
}
