import Foundation
import Hummingbird
import ImageCore
import Testing
@testable import ScalrAPI

/// Scalr's image rules and the spec scalr-ctl builds its commands from.
@Suite struct ScalrTests {
    @Test func namesAndOperatingSystems() {
        for good in ["ab", "ubuntu-1604-base", "A9", "x-y-z"] { #expect(ScalrImage.validName(good)) }
        for bad in ["a", "-ab", "ab-", "a_b", "a.b", "a b", ""] { #expect(!ScalrImage.validName(bad)) }
        #expect(ScalrImage.validOS("ubuntu-16-04") && !ScalrImage.validOS("ubuntu 16") && !ScalrImage.validOS(""))
        #expect(ScalrImage.hasTags("<b>x</b>") && !ScalrImage.hasTags("a > b"))
    }

    @Test func imagesRenderFromTheCoreAndFilterExactly() {
        var image = Image(id: ImageID.generate(), name: "img", status: .queued, visibility: .private, owner: "p1",
                          createdAt: 1_474_917_601, updatedAt: 1_474_917_601, properties: ["architecture": "i386"])
        image.extensions["scalr"] = .object([("scope", .string("environment")), ("cloudPlatform", .string("ec2")),
                                             ("cloudLocation", .string("us-east-1")), ("cloudImageId", .string("ami-1")),
                                             ("os", .string("centos-7")), ("cloudInitInstalled", .bool(true))])
        let r = ScalrImage.render(image)
        #expect(r["added"] == .string("2016-09-26T19:20:01Z") && r["architecture"] == .string("i386") && r["os"]?["id"] == .string("centos-7"))
        #expect(r["cloudFeatures"]?["type"] == .string("AwsImageCloudFeatures") && r["scalrAgentInstalled"] == .bool(true))
        #expect(r["lastUsed"] == .null && r["size"] == .null && r["scope"] == .string("environment") && r["source"] == .string("Manual"))
        #expect(ScalrImage.matches(r, "os", "centos-7") && !ScalrImage.matches(r, "os", "centos"))
        #expect(ScalrImage.matches(r, "cloudInitInstalled", "1") && ScalrImage.matches(r, "cloudInitInstalled", "true"))
        #expect(ScalrImage.matches(r, "deprecated", "false") && ScalrImage.matches(r, "deprecated", "0") && !ScalrImage.matches(r, "deprecated", "yes"))
        #expect(ScalrImage.matches(r, "cloudLocation", "us-east-1") && !ScalrImage.matches(r, "cloudLocation", "us-west-1"))
    }

    /// Found while writing Fuzz/FuzzScalr: `(pageNum - 1) * maxResults` overflowed for a huge pageNum and
    /// the trap took the server down. Such a page is empty, as any page past the end.
    @Test func pagesPastEveryOffsetAreEmpty() throws {
        let objects: [JSONValue] = (0 ..< 5).map { .object([("id", .int(Int64($0)))]) }
        for pageNum in ["92233720368547759", "9223372036854775807"] {
            let listing = try ScalrRequests.listing("maxResults=2&pageNum=\(pageNum)")
            let (data, pagination) = ScalrRequests.page(objects, listing, path: "/api/v1beta0/user/1/images/")
            #expect(data == .array([]) && pagination["next"] == .null)
            #expect(pagination["prev"]?.stringValue?.contains("pageNum=3") == true)
        }
        let (second, _) = ScalrRequests.page(objects, try ScalrRequests.listing("maxResults=2&pageNum=2"), path: "/p")
        #expect(second == .array([objects[2], objects[3]]))
    }

    @Test func scopesSeeTheirOwnAndTheOnesAbove() {
        func image(_ scope: String, owner: String) -> Image {
            var i = Image(id: ImageID.generate(), status: .queued, owner: owner, createdAt: 1, updatedAt: 1)
            i.extensions["scalr"] = .object([("scope", .string(scope))])
            return i
        }
        typealias API = ScalrImageAPI<Never2>
        let global = image("scalr", owner: "admin"), account = image("account", owner: "admin"), env = image("environment", owner: "p1")
        let plain = Image(id: ImageID.generate(), status: .active, owner: "p1", createdAt: 1, updatedAt: 1)
        #expect(API.sees(global, .global) && !API.sees(account, .global) && !API.sees(env, .global))
        #expect(API.sees(global, .account) && API.sees(account, .account) && !API.sees(env, .account))
        #expect(API.sees(global, .environment(project: "p1")) && API.sees(account, .environment(project: "p1")) && API.sees(env, .environment(project: "p1")))
        #expect(!API.sees(env, .environment(project: "p2")) && !API.sees(plain, .environment(project: "p1")))
        #expect(API.owns(env, .environment(project: "p1")) && !API.owns(global, .environment(project: "p1")) && API.owns(global, .global))
        #expect(!API.owns(env, .environment(project: "p2")) && API.owns(account, .account))
    }

    @Test func theSpecHasWhatScalrCtlReads() throws {
        for level in ["user", "account", "global"] {
            let spec = try #require(ScalrSpec.document(level: level))
            let lead = level == "user" ? "/{envId}" : level == "account" ? "/{accountId}" : ""
            #expect(spec["basePath"] == .string("/api/v1beta0/\(level)"))
            let collection = try #require(spec["paths"]?["\(lead)/images/"])
            #expect(collection["parameters"] != nil && collection["get"]?["responses"]?["200"]?["schema"]?["$ref"] == .string("#/definitions/ImageListResponse"))
            let one = try #require(spec["paths"]?["\(lead)/images/{imageId}/"])
            #expect(one["patch"]?["parameters"]?.arrayItems?.first?["in"] == .string("body") && one["delete"] != nil)
            #expect(one["parameters"]?.arrayItems?.last?["pattern"] != nil)
            for (_, p) in (one["parameters"]?.arrayItems ?? []).enumerated() {
                #expect(p["name"] != nil && p["in"] != nil && p["required"] != nil && p["description"] != nil)
            }
            #expect(spec["definitions"]?["ImageListResponse"]?["properties"]?["data"]?["type"] == .string("array"))
            #expect(spec["definitions"]?["Image"]?["properties"]?["id"]?["readOnly"] == .bool(true))
            #expect(spec["definitions"]?["Image"]?["x-filterable"]?.arrayItems?.count == ScalrImage.filterable.count)
        }
        #expect(ScalrSpec.document(level: "farm") == nil)
    }
}

/// A context type for naming the generic API's static helpers in tests.
struct Never2: Hummingbird.RequestContext {
    var coreContext: CoreRequestContextStorage
    init(source: ApplicationRequestContextSource) { coreContext = .init(source: source) }
}
