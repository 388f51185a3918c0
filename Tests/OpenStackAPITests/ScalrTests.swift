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

    @Test func theOSCatalogueIsSeededAndTheOperatorsFileChangesIt() throws {
        let seeded = ScalrOSCatalogue.seeded
        #expect(seeded.os("ubuntu-22-04")?.generation == "22.04" && seeded.os("centos-7-x")?.version == "7.X" && seeded.os("plan9-4") == nil)
        #expect(Set(seeded.systems.map(\.id)).count == seeded.systems.count && seeded.systems.allSatisfy { ScalrImage.validOS($0.id) })
        let file = #"[{"id": "alpine-3-19", "name": "Alpine 3.19", "family": "alpine", "generation": "3", "version": "3.19"},"#
            + #" {"id": "ubuntu-22-04", "name": "Site Ubuntu", "family": "ubuntu", "generation": "22.04", "version": "22.04.4"},"#
            + #" {"id": "centos-6-x", "status": "inactive"}]"#
        let merged = try ScalrOSCatalogue.merging(Array(file.utf8), source: "os.json")
        #expect(merged.os("alpine-3-19")?.family == "alpine" && merged.os("ubuntu-22-04")?.name == "Site Ubuntu" && merged.os("centos-6-x") == nil)
        #expect(merged.systems.count == seeded.systems.count)
        for bad in ["{}", "[1]", #"[{"id": "a b"}]"#, #"[{"id": "x-1", "name": "", "family": "f", "generation": "", "version": ""}]"#,
                    #"[{"id": "x-1", "name": "n", "family": "f", "generation": "1"}]"#, #"[{"id": "x-1", "status": "gone"}]"#,
                    #"[{"id": "x-1", "name": "n", "family": "f", "generation": "1", "version": "1", "colour": "red"}]"#] {
            #expect(throws: ScalrOSCatalogue.FileError.self) { try ScalrOSCatalogue.merging(Array(bad.utf8), source: "os.json") }
        }
    }

    @Test func registrationsCheckTheOSSizeTypeAndConflictingSettings() throws {
        func register(_ extra: String, systems: ScalrOSCatalogue = .seeded) throws -> ScalrRequests.Registration {
            let body = #"{"name": "img", "cloudPlatform": "ec2", "cloudLocation": "us-east-1", "cloudImageId": "ami-1", "architecture": "x86_64", "os": {"id": "ubuntu-22-04"}"#
                + extra + "}"
            return try ScalrRequests.registration(Array(body.utf8), scope: .global, systems: systems)
        }
        func failure(_ extra: String) -> (Int, String)? {
            do { _ = try register(extra); return nil } catch let f as ScalrFailure { return (f.status.code, f.code) } catch { return nil }
        }
        let r = try register(#", "size": 8, "type": "ebs-hvm", "cloudFeatures": {"type": "AwsImageCloudFeatures", "virtualization": "hvm"}"#)
        #expect(r.size == 8 && r.type == "ebs-hvm" && r.features?["virtualization"] == .string("hvm"))
        #expect(try register("").size == nil && register("").type == nil)
        #expect(failure(#", "os": {"id": "plan9-4"}"#)! == (400, "InvalidValue"))
        #expect(failure(#", "size": 0"#)! == (400, "InvalidValue") && failure(#", "size": "8""#)! == (400, "InvalidValue"))
        #expect(failure(#", "type": "ssd""#)! == (400, "InvalidValue"))
        #expect(failure(#", "cloudFeatures": {}"#)! == (400, "InvalidStructure"))
        #expect(failure(#", "type": "ebs", "cloudFeatures": {"type": "AwsImageCloudFeatures", "virtualization": "hvm"}"#)! == (422, "ConfigurationMismatch"))
        #expect(failure(#", "cloudFeatures": {"type": "VmwareImageCloudFeatures"}"#)! == (422, "ConfigurationMismatch"))
        let gce = #", "cloudPlatform": "gce", "type": "ebs""#
        #expect(failure(gce)! == (422, "ConfigurationMismatch"))
        // the OS is looked up in the catalogue the server was given
        let site = try ScalrOSCatalogue.merging(Array(#"[{"id": "ubuntu-22-04", "status": "inactive"}]"#.utf8), source: "f")
        #expect(throws: ScalrFailure.self) { try register("", systems: site) }
    }

    @Test func sizeTypeAndLastUsedRender() {
        var image = Image(id: ImageID.generate(), name: "img", status: .queued, visibility: .private, owner: "p1", createdAt: 1, updatedAt: 1)
        image.extensions["scalr"] = .object([("scope", .string("environment")), ("cloudPlatform", .string("ec2")), ("size", .int(8)),
                                             ("type", .string("ebs"))])
        image.extensions["usage"] = .object([("lastUsed", .int(1_474_917_601))])
        let r = ScalrImage.render(image)
        #expect(r["size"] == .int(8) && r["type"] == .string("ebs") && r["lastUsed"] == .string("2016-09-26T19:20:01Z"))
    }
}

/// A context type for naming the generic API's static helpers in tests.
struct Never2: Hummingbird.RequestContext {
    var coreContext: CoreRequestContextStorage
    init(source: ApplicationRequestContextSource) { coreContext = .init(source: source) }
}
