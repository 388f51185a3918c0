// The Danube front-end's request decoding: `data` (query parameters of a GET, JSON bodies of the
// other methods), the writable image fields as Danube's serializer checks them, image names,
// IMGAPI manifests (one from a manifest URL, a remote repository's listing), `order_by`,
// `disk_id`, the lenient query booleans and task ids.
//
// Input: byte 0 picks what is decoded (0 body fields, 1 query fields, 2 manifest, 3 repository
// listing, 4 order_by, 5 name, 6 disk_id, 7 flag and task id); the rest is the body, query or text.
import DanubeAPI
import FuzzSupport
import Hummingbird
import HummingbirdCore
import ImageCore

func fields(_ data: [(String, JSONValue)]) {
    let (document, errors) = DanubeRequests.fields(data)
    guard case .object = errors else { fatalError("fuzz check failed: errors are not an object") }
    let limits = ["alias": 32, "version": 16, "desc": 128]
    for (key, value) in document {
        // What is kept passed the serializer's rules.
        if case .string(let s) = value, let limit = limits[key] {
            require(!s.contains { "<>%$&;'\"".contains($0) } && s.count <= limit, "text kept in \(key): \(s)")
        }
    }
}

func fuzzOne(_ data: [UInt8]) {
    var input = FuzzInput(data)
    let what = input.choice(8)
    let payload = input.rest()
    let text = String(decoding: payload, as: UTF8.self)
    do {
        switch what {
        case 0: fields(try DanubeRequests.body(payload))
        case 1: fields(DanubeRequests.query(URI("/api/image/x/?" + text).queryParameters))
        case 2:
            if case .success(let m) = DanubeRequests.manifest(try JSONValue.parse(payload)) {
                require(ImageID.isValid(m.uuid) && m.uuid == m.uuid.lowercased(), "manifest uuid \(m.uuid)")
                require(m.sizeMB > 0 && (1 ... 6).contains(m.ostype), "manifest size \(m.sizeMB) ostype \(m.ostype)")
            }
        case 3:
            for image in try DanubeRequests.repositoryListing(payload) {
                require(ImageID.isValid(image.uuid), "listed uuid \(image.uuid)")
                _ = DanubeRequests.manifest(image.manifest)
            }
        case 4: _ = try DanubeRequests.sortOrder(text)
        case 5:
            if let errors = DanubeRequests.nameErrors(text), errors.isEmpty {
                require(text.utf8.count <= 32, "name of \(text.utf8.count) bytes accepted")
            }
        case 6:
            let n = try DanubeRequests.diskId(try JSONValue.parse(payload))
            require((1 ... 64).contains(n), "disk_id \(n)")
        default:
            _ = DanubeRequests.flag(Substring(text))
            if let id = DanubeRequests.taskCoreId(text) { require(ImageID.isValid(id), "task id \(id)") }
        }
    } catch {
        _ = "\(error)"
    }
}

@main
enum Main {
    static func main() { fuzzMain("FuzzDanube", fuzzOne) }
}
