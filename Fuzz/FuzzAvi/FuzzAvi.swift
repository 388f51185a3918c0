// The Avi front-end's request decoding: Image objects of POST and PUT validated field by field for
// the version asked, PATCH bodies (Avi's add/replace/delete and RFC 6902 `json_patch`) validated and
// applied to a stored document, list query strings, `X-Avi-Version`, login bodies and cookies.
//
// Input: byte 0 picks the request (0 create, 1 replace, 2 patch, 3 list, 4 version header,
// 5 login as JSON, 6 login as a form, 7 cookies), byte 1 the version spoken; the rest is the body,
// the query string or the header.
import FuzzSupport
import Hummingbird
import HummingbirdCore
import AviAPI
import FrontEndSupport
import ImageCore

let versions: [AviVersion] = [.current, "18.2.6", "18.2.8", "20.1.1", "21.1.3", "30.1.1"]

/// A stored `avi` document with every kind of field.
let stored: [(String, JSONValue)] = [
    ("name", .string("controller.pkg")), ("type", .string("IMAGE_TYPE_SYSTEM")), ("uber_bundle", .bool(false)),
    ("progress", .int(100)), ("img_state", .object([("state", .string("IMAGE_FSM_COMPLETED")), ("reason", .string(""))])),
    ("events", .array([.object([("task_name", .string("ImageUpload"))])])), ("cloud_info_values", .array([.string("x")])),
    ("controller_info", .object([("build", .object([("version", .string("30.2.1"))]))])),
]

func checked(_ document: [(String, JSONValue)], _ version: AviVersion) {
    for (key, value) in document {
        // Whatever was accepted validates again as it is stored.
        require((try? AviRequestsCheck.revalidate(key, value, version)) != nil, "accepted field \(key) does not validate")
    }
}

/// Re-validates a stored field through a PUT of just that field.
enum AviRequestsCheck {
    static func revalidate(_ key: String, _ value: JSONValue, _ version: AviVersion) throws {
        _ = try AviRequests.replacement(.object([("name", .string("n")), (key, value)]), version: version)
    }
}

func fuzzOne(_ data: [UInt8]) {
    var input = FuzzInput(data)
    let request = input.choice(8)
    let version = versions[input.choice(versions.count)]
    let payload = input.rest()
    let text = String(decoding: payload, as: UTF8.self)
    do {
        switch request {
        case 0:
            let c = try AviRequests.creation(try JSONValue.parse(payload), version: version)
            require(!c.name.isEmpty, "empty name accepted")
            checked(c.document, version)
        case 1:
            let r = try AviRequests.replacement(try JSONValue.parse(payload), version: version)
            require(!r.name.isEmpty, "empty name accepted")
            checked(r.document, version)
        case 2:
            switch try AviRequests.patch(try JSONValue.parse(payload), version: version) {
            case .jsonPatch(let ops):
                let (name, fields) = try AviRequests.patched(.object(stored), ops, version: version)
                require(!name.isEmpty, "json_patch left an empty name")
                checked(fields, version)
            case .fields(let op, let name, let fields):
                require(name.map { !$0.isEmpty } ?? true, "empty name accepted")
                let document = try AviPatch.apply(op, fields, to: Array(stored.dropFirst()))
                require(Set(document.map(\.0)).count == document.count, "a patch duplicated a field")
            }
        case 3:
            let listing = try AviRequests.listing(URI("/api/image?" + text).queryParameters, defaultPageSize: 25, maxPageSize: 200)
            require(listing.page >= 1 && (1 ... 200).contains(listing.pageSize), "page \(listing.page) size \(listing.pageSize)")
            var page = listing.request
            page.limit = listing.pageSize
            page.offset = listing.offset
            require(page.offset >= 0, "negative offset \(page.offset)")
            _ = listing.hasNext(total: 1000)
            _ = try ImageService.listQuery(page, config: ImageServiceConfig(), by: Fixtures.principal(1))
        case 4:
            let v = try AviRequests.version(text)
            require(v <= .current, "version \(v) above the current one accepted")
        case 5:
            _ = try AviRequests.loginFields(payload, contentType: "application/json; charset=utf-8")
        case 6:
            _ = try AviRequests.loginFields(payload, contentType: "application/x-www-form-urlencoded")
        default:
            _ = RequestReading.cookies(text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init))
        }
    } catch {
        _ = "\(error)"
    }
}

@main
enum Main {
    static func main() { fuzzMain("FuzzAvi", fuzzOne) }
}
