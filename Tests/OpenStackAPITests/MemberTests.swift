import HTTPTypes
import ImageCore
import Testing

@Suite struct MemberTests {
    @Test func shareAcceptRejectRemove() async throws {
        try await withAPI { api in
            let id = try await api.create(#"{"name": "shared"}"#)
            let add = try await api.call(.post, "/v2/images/\(id)/members", json: #"{"member": "pb"}"#)
            #expect(add.status == .ok)
            let m = try add.json
            #expect(m["member_id"] == .string("pb") && m["image_id"] == .string(id) && m["status"] == .string("pending"))
            #expect(m["schema"] == .string("/v2/schemas/member"))
            #expect(m["created_at"]?.stringValue?.hasSuffix("Z") == true)
            #expect(try await api.call(.post, "/v2/images/\(id)/members", json: #"{"member": "pb"}"#).status == .conflict)
            #expect(try await api.call(.post, "/v2/images/\(id)/members", json: #"{"member": "pc"}"#).status == .ok)

            // Pending: bob can read the image but it is not in his default list.
            #expect(try await api.listIDs("", token: Tok.bob).contains(id) == false)
            #expect(try await api.show(id, token: Tok.bob)["id"] == .string(id))

            // The owner lists every member; a member sees only itself.
            let all = try await api.call(.get, "/v2/images/\(id)/members").json
            #expect(all["members"]?.arrayValue.compactMap { $0["member_id"]?.stringValue } == ["pb", "pc"])
            #expect(all["schema"] == .string("/v2/schemas/members"))
            let bobs = try await api.call(.get, "/v2/images/\(id)/members", token: Tok.bob).json
            #expect(bobs["members"]?.arrayValue.compactMap { $0["member_id"]?.stringValue } == ["pb"])

            // Only the member sets its status.
            #expect(try await api.call(.put, "/v2/images/\(id)/members/pb", json: #"{"status": "accepted"}"#).status == .forbidden)
            #expect(try await api.call(.put, "/v2/images/\(id)/members/pb", token: Tok.carol, json: #"{"status": "accepted"}"#).status == .forbidden)
            #expect(try await api.call(.put, "/v2/images/\(id)/members/pb", token: Tok.bob, json: #"{"status": "maybe"}"#).status == .badRequest)
            #expect(try await api.call(.put, "/v2/images/\(id)/members/pb", token: Tok.bob, json: #"{}"#).status == .badRequest)
            let accepted = try await api.call(.put, "/v2/images/\(id)/members/pb", token: Tok.bob, json: #"{"status": "accepted"}"#)
            #expect(accepted.status == .ok)
            #expect(try accepted.json["status"] == .string("accepted"))
            #expect(try await api.listIDs("", token: Tok.bob).contains(id))
            let shown = try await api.call(.get, "/v2/images/\(id)/members/pb", token: Tok.bob).json
            #expect(shown["status"] == .string("accepted"))
            // Carol is a member too, but may not read bob's membership.
            #expect(try await api.call(.get, "/v2/images/\(id)/members/pb", token: Tok.carol).status == .notFound)

            #expect(try await api.call(.put, "/v2/images/\(id)/members/pb", token: Tok.bob, json: #"{"status": "rejected"}"#).status == .ok)
            #expect(try await api.listIDs("", token: Tok.bob).contains(id) == false)

            // Members may not manage membership; the owner removes.
            #expect(try await api.call(.delete, "/v2/images/\(id)/members/pc", token: Tok.bob).status == .forbidden)
            #expect(try await api.call(.delete, "/v2/images/\(id)/members/pb").status == .noContent)
            #expect(try await api.call(.delete, "/v2/images/\(id)/members/pb").status == .notFound)
            #expect(try await api.call(.get, "/v2/images/\(id)", token: Tok.bob).status == .notFound)
        }
    }

    @Test func onlySharedImagesHaveMembers() async throws {
        try await withAPI { api in
            let priv = try await api.create(#"{"visibility": "private"}"#)
            let r = try await api.call(.post, "/v2/images/\(priv)/members", json: #"{"member": "pb"}"#)
            #expect(r.status == .forbidden)
            #expect(try r.json["message"]?.stringValue?.contains("Only shared images have members") == true)
            #expect(try await api.call(.get, "/v2/images/\(priv)/members").status == .forbidden)
            #expect(try await api.call(.get, "/v2/images/\(priv)/members/pb").status == .notFound)

            // Leaving `shared` keeps member rows but they stop granting access.
            let id = try await api.create()
            #expect(try await api.call(.post, "/v2/images/\(id)/members", json: #"{"member": "pb"}"#).status == .ok)
            #expect(try await api.patch(id, #"[{"op": "replace", "path": "/visibility", "value": "private"}]"#).status == .ok)
            #expect(try await api.call(.get, "/v2/images/\(id)", token: Tok.bob).status == .notFound)
            #expect(try await api.patch(id, #"[{"op": "replace", "path": "/visibility", "value": "shared"}]"#).status == .ok)
            #expect(try await api.call(.get, "/v2/images/\(id)", token: Tok.bob).status == .ok)
        }
    }

    @Test func badMemberBodies() async throws {
        try await withAPI { api in
            let id = try await api.create()
            for body in ["{}", #"{"member": ""}"#, #"{"member": 5}"#, #"{"member": "   "}"#, "[]"] {
                let r = try await api.call(.post, "/v2/images/\(id)/members", json: body)
                #expect(r.status == .badRequest, "\(body)")
            }
            #expect(try await api.call(.post, "/v2/images/\(id)/members", token: Tok.bob, json: #"{"member": "pb"}"#).status == .notFound)
            #expect(try await api.call(.get, "/v2/images/\(id)/members").json["members"]?.arrayValue.isEmpty == true)
        }
    }
}
