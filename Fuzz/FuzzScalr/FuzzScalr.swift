// The Scalr front-end's request decoding: Image objects to register (per scope), edit bodies applied
// to a stored image, list query strings (filters and paging, with the pagination links), the
// `deleteFromCloud` flag, and signed requests: the canonical query, the string to sign, the date
// header and the whole verification (a request signed with the right secret must verify).
//
// Input: byte 0 picks the request (0 register, 1 edit, 2 list, 3 signature, 4 deregister query, 5 an
// operator's OS catalogue file, then a registration checked against it),
// byte 1 the scope, the caller and the stored image; the rest is the body or the query string. For
// a signature the rest is lines: method, X-Scalr-Date, path, query, X-Scalr-Signature, then the body.
import Foundation
import FuzzSupport
import Identity
import ImageCore
import ScalrAPI

let scopes: [ScalrScope] = [.global, .account, .environment(project: Fixtures.project)]

/// Image objects as the list renders them (only the members filters read).
let rendered: [JSONValue] = (0 ..< 7).map { i in
    .object([
        ("id", .string("11111111-2222-4333-8444-55555555555\(i)")), ("name", .string("image-\(i)")),
        ("cloudImageId", .string("ami-\(i)")), ("cloudLocation", i % 3 == 0 ? .null : .string("us-east-1")),
        ("cloudPlatform", .string(i % 3 == 0 ? "gce" : "ec2")), ("scalrAgentInstalled", .bool(i % 2 == 0)),
        ("cloudInitInstalled", .bool(false)), ("architecture", .string("x86_64")), ("deprecated", .bool(i == 4)),
        ("source", .string("Manual")), ("status", .string("active")), ("scope", .string(i < 2 ? "scalr" : "environment")),
        ("os", .object([("id", .string("ubuntu-22-04"))])),
    ])
}

func signature(_ payload: [UInt8]) {
    var lines: [[UInt8]] = []
    var rest = payload[...]
    while lines.count < 5, let newline = rest.firstIndex(of: 0x0A) {
        lines.append(Array(rest[..<newline]))
        rest = rest[(newline + 1)...]
    }
    while lines.count < 5 { lines.append([]) }
    let text = lines.map { String(decoding: $0, as: UTF8.self) }
    let (method, date, path, query, given) = (text[0], text[1], text[2], text[3].isEmpty ? nil : text[3], text[4])
    let body = Array(rest)
    _ = ScalrSignature.canonicalQuery(query)
    _ = ScalrSignature.stringToSign(method: method, date: date, path: path, query: query, body: body)
    let when = ScalrSignature.parseDate(date)
    let now = when ?? Date(timeIntervalSince1970: 1_700_000_000)
    let secretOf: @Sendable (String) async throws -> String? = { $0 == "key-1" ? "s3cr3t" : nil }
    // As sent: verified or refused, never a trap.
    _ = runBlocking {
        try await ScalrSignature.verify(keyId: "key-1", date: date, signature: given, method: method, path: path,
                                        query: query, body: body, now: now, secretOf: secretOf)
    }
    // Signed with the key's secret: verified whenever the date is one the server reads.
    let signed = ScalrSignature.sign(secret: "s3cr3t", method: method, date: date, path: path, query: query, body: body)
    let outcome = runBlocking {
        try await ScalrSignature.verify(keyId: "key-1", date: date, signature: signed, method: method, path: path,
                                        query: query, body: body, now: now, secretOf: secretOf)
    }
    if when != nil {
        if case .failure(let error) = outcome { fatalError("fuzz check failed: a correctly signed request was refused: \(error)") }
    }
}

func fuzzOne(_ data: [UInt8]) {
    var input = FuzzInput(data)
    let request = input.choice(6)
    let choice = input.byte()
    let scope = scopes[Int(choice) % scopes.count]
    let caller = Fixtures.principal(choice >> 2)
    let payload = input.rest()
    do {
        switch request {
        case 0:
            let r = try ScalrRequests.registration(payload, scope: scope)
            require(r.architecture == "i386" || r.architecture == "x86_64", "architecture \(r.architecture)")
            var attributes: [(String, JSONValue)] = [("name", .string(r.name)), ("architecture", .string(r.architecture)),
                                                     ("os_distro", .string(r.os)), ("scalr_cloud_platform", .string(r.platform)),
                                                     ("scalr_cloud_image_id", .string(r.cloudImageId))]
            if let location = r.location { attributes.append(("scalr_cloud_location", .string(location))) }
            _ = try ImageService.newImage(attributes, config: ImageServiceConfig(), by: caller, now: Fixtures.now)
        case 1:
            let (changes, document) = try ScalrRequests.editChanges(try ScalrRequests.edit(payload))
            try ImageService.checkChangeable(changes)
            var image = Fixtures.image(choice)
            try ImageService.applyChanges(changes, to: &image, config: ImageServiceConfig(), by: caller)
            image.extensions["scalr"] = JSONValue.merging(image.extensions["scalr"], document)
        case 2:
            let listing = try ScalrRequests.listing(String(decoding: payload, as: UTF8.self))
            require((1 ... 100).contains(listing.maxResults) && listing.pageNum >= 1, "paging \(listing.maxResults) \(listing.pageNum)")
            let matching = rendered.filter { ScalrRequests.matches($0, listing.filters) }
            let (page, pagination) = ScalrRequests.page(matching, listing, path: "/api/v1beta0/user/1/images/")
            require((page.arrayItems?.count ?? -1) <= listing.maxResults, "page longer than maxResults")
            _ = pagination.serialized
        case 3:
            signature(payload)
        case 5:
            let systems = try ScalrOSCatalogue.merging(payload, source: "fuzz")
            let ids = systems.systems.map(\.id)
            require(Set(ids).count == ids.count, "an OS id twice in the catalogue")
            let os = ids.last ?? "unknown-os"
            let body = #"{"name": "img", "cloudPlatform": "ec2", "cloudLocation": "us-east-1", "cloudImageId": "ami-1", "architecture": "x86_64", "os": {"id": "\#(os)"}}"#
            require((try? ScalrRequests.registration(Array(body.utf8), scope: scope, systems: systems))?.os == os, "a catalogue OS refused")
        default:
            _ = ScalrRequests.deletesFromCloud(String(decoding: payload, as: UTF8.self))
        }
    } catch {
        _ = "\(error)"
    }
}

@main
enum Main {
    static func main() { fuzzMain("FuzzScalr", fuzzOne) }
}
