import Foundation
@testable import AviAPI
import ImageCore
import Testing

/// The pure parts of issue 18's Avi points: reference forms, nested shapes, Basic credentials, PATCH identity.
@Suite struct AviRound2Tests {
    @Test func referenceForms() {
        let uuid = "image-0c1e6a52-1d4b-4f25-8a9e-2f3b4c5d6e7f"
        for text in ["https://10.10.1.101/api/image/\(uuid)", "https://10.10.1.101/api/image/\(uuid)#img1", "/api/image/\(uuid)",
                     "http://h:9292/api/image/\(uuid)/", "/api/image/\(uuid)#a#b"] {
            #expect(AviRef.parse(text, type: "image") == .uuid(uuid), "\(text)")
        }
        for (text, name) in [("/api/image?name=ctl%20patch", "ctl patch"), ("/api/image/?name=p1", "p1"),
                             ("https://ctl/api/image?name=p1#p1", "p1"), ("/api/tenant?name=admin", nil)] {
            #expect(AviRef.parse(text, type: "image") == name.map { AviRef.name($0) }, "\(text)")
        }
        #expect(AviRef.parse("/api/tenant/admin", type: "tenant") == .uuid("admin"))
        #expect(AviRef.parse("https://avi/api/tenant/admin#admin", type: "tenant") == .uuid("admin"))
        #expect(AviRef.parse("/api/tenant?name=p-bob", type: "tenant") == .name("p-bob"))
        for bad in ["", "admin", "/api/tenant", "/api/tenant/", "/api/tenants/admin", "/api/tenant?name=", "/api/tenant?uuid=x",
                    "/api/tenant?name=a&name=b", "/api/tenant/a/b", "https://host", "https://host/api/image/x"] {
            #expect(AviRef.parse(bad, type: "tenant") == nil, "\(bad)")
        }
    }

    @Test func storedReferencesRoundTrip() {
        let id = "0c1e6a52-1d4b-4f25-8a9e-2f3b4c5d6e7f"
        #expect(AviImage.storedRef(id) == "/api/image/image-\(id)")
        #expect(AviImage.storedRefId(AviImage.storedRef(id)) == id)
        #expect(AviImage.storedRefId("/api/image/\(id)") == nil)  // not the stored form
        #expect(AviImage.storedRefId("ctl-patch") == nil)
    }

    @Test func nestedShapesAreCheckedWithTheirPaths() throws {
        func refusal(_ key: String, _ json: String, version: AviVersion = .current) -> String? {
            do { _ = try AviImage.validate(key, try JSONValue.parse(Array(json.utf8)), version: version); return nil } catch let e as AviError {
                #expect(e.status == .badRequest)
                return e.message
            } catch { return "\(error)" }
        }
        #expect(refusal("controller_info", #"{"build":{"build_no":1,"version":"30.2.1"},"hash":"h","patch":{"reboot_list":[{"reboot":true}]},"path":"/p"}"#) == nil)
        #expect(refusal("controller_info", #"{"build":{"colour":1}}"#)?.contains("'controller_info.build.colour'") == true)
        #expect(refusal("controller_info", #"{"build":{"build_no":2147483648}}"#)?.contains("controller_info.build.build_no") == true)
        #expect(refusal("controller_info", #"{"build":{"remote_image_ref":"r"}}"#, version: "22.1.3")?.contains("30.1.1") == true)
        #expect(refusal("controller_info", #"{"build":{"remote_image_ref":"r"}}"#) == nil)
        #expect(refusal("migrations", #"{"dryrun_min_memory":1.5,"versions":["1"]}"#) == nil)
        #expect(refusal("migrations", #"{"se_min_cores":1.5}"#)?.contains("migrations.se_min_cores") == true)
        #expect(refusal("events", #"[{"task_name":"t","nodes_events":[{"status":"SYSERR_SUCCESS","ip":{"addr":"a","type":"V6"}}]}]"#) == nil)
        #expect(refusal("events", #"[{"nodes_events":[{"status":"SYSERR_"}]}]"#)?.contains("events[0].nodes_events[0].status") == true)
        #expect(refusal("events", #"[{"nodes_events":[{"status":"syserr_success"}]}]"#) != nil)
        #expect(refusal("events", #"[{"sub_events":[{"ip":{"type":"V5"}}]}]"#)?.contains("events[0].sub_events[0].ip.type") == true)
        #expect(refusal("cloud_info_values", #"[{"cloud_data_values":[{"values":["a",1]}]}]"#)?.contains("cloud_info_values[0].cloud_data_values[0].values[1]") == true)
        #expect(refusal("img_state", #"{"state":"IMAGE_FSM_FAILED","last_changed_time":{"secs":1,"usecs":"2"}}"#)?.contains("img_state.last_changed_time.usecs") == true)
        #expect(refusal("img_state", #"{"reason":null}"#)?.contains("may not be null") == true)
        #expect(refusal("controller_patch_ref", #""/api/image?name=p""#) == nil)
        #expect(refusal("controller_patch_ref", #""p""#)?.contains("must reference an image") == true)
    }

    @Test func basicCredentials() {
        func header(_ s: String) -> String { "Basic " + Data(s.utf8).base64EncodedString() }
        #expect(AviBasicAuth.credentials(header("ops:pa:ss")).map { [$0.name, $0.password] } == ["ops", "pa:ss"])
        #expect(AviBasicAuth.credentials("basic " + Data("ops:".utf8).base64EncodedString()).map { [$0.name, $0.password] } == ["ops", ""])
        for bad in [header(":pw"), header("nocolon"), "Basic", "Basic ***", "Bearer abc", "Token abc", header("ops:pw") + "x"] {
            #expect(AviBasicAuth.credentials(bad) == nil, "\(bad)")
        }
    }

    @Test func patchIdentityAndOptionalBody() throws {
        let whole = try JSONValue.parse(Array(#"{"uuid":"image-x","url":"u","_last_modified":"12","tenant_ref":"/api/tenant/pa","name":"n","progress":5}"#.utf8))
        let identity = try AviRequests.patchIdentity(whole)
        #expect(identity.uuid == "image-x" && identity.lastModified == "12" && identity.tenantRef == "/api/tenant/pa")
        guard case .fields(let op, let name, let fields) = try AviRequests.patch(whole, version: .current) else { Issue.record("not fields"); return }
        #expect(op == .replace && name == "n" && fields.map(\.0) == ["progress"])
        guard case .fields(_, let none, let nothing) = try AviRequests.patch(.object([]), version: .current) else { Issue.record("not fields"); return }
        #expect(none == nil && nothing.isEmpty)
        #expect(throws: AviError.self) { try AviRequests.patch(.object([("delete", .object([("uuid", .string("x"))]))]), version: .current) }
        #expect(throws: AviError.self) { try AviRequests.patchIdentity(.object([("_last_modified", .int(1))])) }
        #expect(try AviRequests.patchIdentity(.object([("delete", .object([("progress", .int(1))]))])).uuid == nil)
    }
}
