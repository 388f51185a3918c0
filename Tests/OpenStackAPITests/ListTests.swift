import HTTPTypes
import ImageCore
import Testing

@Suite struct ListTests {
    @Test func defaultPageSizeNextAndFirstLinks() async throws {
        try await withAPI { api in
            var created: [String] = []
            for i in 0..<30 { created.append(try await api.create(#"{"name": "img-\#(i)"}"#)) }
            let r = try await api.call(.get, "/v2/images")
            let page = try r.json
            #expect(page["images"]?.arrayValue.count == 25)
            #expect(page["first"] == .string("/v2/images"))
            #expect(page["schema"] == .string("/v2/schemas/images"))
            let next = try #require(page["next"]?.stringValue)
            #expect(next.hasPrefix("/v2/images?marker="))
            let second = try await api.call(.get, next).json
            #expect(second["images"]?.arrayValue.count == 5)
            #expect(second["next"] == nil)
            #expect(second["first"] == .string("/v2/images"))
            let all = (page["images"]!.arrayValue + second["images"]!.arrayValue).compactMap { $0["id"]?.stringValue }
            #expect(Set(all) == Set(created) && all.count == 30)
        }
    }

    @Test func pagingWithLimitVisitsEveryImageOnceInOrder() async throws {
        try await withAPI { api in
            // Names repeat and some are null, so ties and NULLs exercise the keyset paging.
            var ids: [String] = []
            for i in 0..<23 {
                let name = i % 4 == 0 ? "null" : "\"n\(i % 3)\""
                ids.append(try await api.create(#"{"name": \#(name), "min_ram": \#(i % 5)}"#))
            }
            for sort in ["sort=name:asc", "sort=name:desc", "sort=name:asc,id:desc", "sort_key=name&sort_dir=asc",
                         "sort_key=status&sort_key=name&sort_dir=asc&sort_dir=desc", "sort=size:asc", "sort=updated_at:asc,name"] {
                let full = try await api.listIDs(sort + "&limit=1000")
                #expect(Set(full) == Set(ids), "\(sort)")
                var paged: [String] = []
                var uri: String? = "/v2/images?\(sort)&limit=4"
                while let u = uri {
                    let page = try await api.call(.get, u).json
                    paged += page["images"]!.arrayValue.compactMap { $0["id"]?.stringValue }
                    uri = page["next"]?.stringValue
                    #expect(page["first"]?.stringValue?.contains("marker") == false)
                }
                #expect(paged == full, "\(sort)")
            }
            // Names ascending put NULLs first, descending last.
            let asc = try await api.call(.get, "/v2/images?sort=name:asc&limit=1").json
            #expect(asc["images"]?.arrayValue.first?["name"] == .null)
            let desc = try await api.call(.get, "/v2/images?sort=name:desc&limit=1").json
            #expect(desc["images"]?.arrayValue.first?["name"] == .string("n2"))
        }
    }

    @Test func sortOrders() async throws {
        try await withAPI { api in
            let b = try await api.create(#"{"name": "b", "disk_format": "raw"}"#)
            let a = try await api.create(#"{"name": "a", "disk_format": "qcow2"}"#)
            let c = try await api.create(#"{"name": "c", "disk_format": "iso"}"#)
            #expect(try await api.listIDs("sort=name:asc") == [a, b, c])
            #expect(try await api.listIDs("sort=name") == [c, b, a])
            #expect(try await api.listIDs("sort_key=name&sort_dir=asc") == [a, b, c])
            #expect(try await api.listIDs("sort_key=disk_format&sort_dir=desc") == [b, a, c])
            #expect(try await api.listIDs("sort_key=name&sort_key=id&sort_dir=asc&sort_dir=asc") == [a, b, c])
        }
    }

    @Test(arguments: [
        ("sort=bogus:asc", "Invalid sort key"),
        ("sort_key=owner", "Invalid sort key"),
        ("sort=name:sideways", "Invalid sort direction"),
        ("sort_dir=up", "Invalid sort direction"),
        ("sort=name&sort_key=id", "can't be combined"),
        ("sort_key=name&sort_key=id&sort_dir=asc&sort_dir=asc&sort_dir=desc", "does not match"),
        ("limit=abc", "limit param must be an integer"),
        ("limit=-1", "limit param must be positive"),
        ("marker=6f3a5d66-2c38-4c36-9f11-0ed5a1b2c3d4", "Invalid marker"),
        ("marker=garbage", "Invalid marker"),
        ("name=like:foo", "unknown operator"),
        ("status=gt:active", "unknown operator"),
        ("status=bogus", "Invalid status value"),
        ("status=in:active,bogus", "Invalid status value"),
        ("visibility=everyone", "Invalid visibility value"),
        ("member_status=maybe", "Invalid status value"),
        ("size_min=big", "must be an integer"),
        ("size_max=1.5", "must be an integer"),
        ("protected=True", "Valid values are 'true' or 'false'"),
        ("os_hidden=maybe", "Valid values are 'true' or 'false'"),
        ("created_at=gt:yesterday", "Unable to parse datetime"),
        ("updated_at=2026-13-01T00:00:00Z", "Unable to parse datetime"),
        ("changes-since=2020-01-01", "no longer available"),
        ("name=in:\"unclosed", "quote is not closed"),
    ])
    func badListParametersAre400(query: String, fragment: String) async throws {
        try await withAPI { api in
            try await api.create(#"{"name": "x"}"#)
            let r = try await api.call(.get, "/v2/images?\(query)")
            #expect(r.status == .badRequest, "\(query): \(r.text)")
            #expect(try r.json["message"]?.stringValue?.contains(fragment) == true, "\(fragment) in \(r.text)")
        }
    }

    @Test func filters() async throws {
        try await withAPI { api in
            let deb = try await api.create(#"{"name": "debian", "disk_format": "qcow2", "container_format": "bare", "os_distro": "debian", "tags": ["cloud", "lts"], "min_ram": 512}"#)
            let ubu = try await api.create(#"{"name": "ubuntu", "disk_format": "raw", "container_format": "ova", "os_distro": "ubuntu", "tags": ["cloud"], "protected": true}"#)
            let odd = try await api.create(#"{"name": "a:b, c", "disk_format": "iso", "visibility": "private"}"#)
            let active = try await api.insert(status: .active, owner: "pa", name: "act", size: 2048)
            let small = try await api.insert(status: .active, owner: "pa", name: "small", size: 10)
            let cases: [(String, Set<String>)] = [
                ("name=debian", [deb]),
                ("name=eq:a:b, c", [odd]),
                ("name=in:debian,ubuntu", [deb, ubu]),
                ("name=in:\"a:b, c\",debian", [odd, deb]),
                ("id=\(ubu)", [ubu]),
                ("id=in:\(deb),\(odd)", [deb, odd]),
                ("disk_format=raw", [ubu, active, small]),
                ("disk_format=in:qcow2,iso", [deb, odd]),
                ("container_format=ova", [ubu]),
                ("status=active", [active, small]),
                ("status=in:queued,active", [deb, ubu, odd, active, small]),
                ("status=queued&disk_format=qcow2", [deb]),
                ("os_distro=debian", [deb]),
                ("os_distro=fedora", []),
                ("tag=cloud", [deb, ubu]),
                ("tag=cloud&tag=lts", [deb]),
                ("protected=true", [ubu]),
                ("protected=false", [deb, odd, active, small]),
                ("size_min=100", [active]),
                ("size_max=100", [small]),
                ("size_min=10&size_max=2048", [active, small]),
                ("size=2048", [active]),
                ("min_ram=512", [deb]),
                ("owner=pa", [deb, ubu, odd, active, small]),
                ("owner=pb", []),
                ("visibility=private", [odd, active, small]),
                ("visibility=shared", [deb, ubu]),
                ("created_at=gte:2000-01-01T00:00:00Z", [deb, ubu, odd, active, small]),
                ("created_at=lt:2000-01-01T00:00:00", []),
                ("updated_at=gt:2999-01-01T00:00:00%2B02:00", []),
            ]
            for (query, expected) in cases {
                let ids = try await api.listIDs(query)
                #expect(Set(ids) == expected && ids.count == expected.count, "\(query)")
            }
        }
    }

    @Test func visibilityAndOwnershipRules() async throws {
        try await withAPI { api in
            let alicePrivate = try await api.create(#"{"visibility": "private"}"#)
            let aliceShared = try await api.create(#"{"visibility": "shared"}"#)
            let aliceCommunity = try await api.create(#"{"visibility": "community"}"#)
            let aliceHidden = try await api.create(#"{"os_hidden": true}"#)
            let publicImage = try await api.create(#"{"visibility": "public"}"#, token: Tok.admin)
            let bobPrivate = try await api.create(#"{"visibility": "private"}"#, token: Tok.bob)
            let sharedWithBob = try await api.create(#"{"visibility": "shared"}"#)
            let pendingForBob = try await api.create(#"{"visibility": "shared"}"#)
            let rejectedByBob = try await api.create(#"{"visibility": "shared"}"#)
            for id in [sharedWithBob, pendingForBob, rejectedByBob] {
                #expect(try await api.call(.post, "/v2/images/\(id)/members", json: #"{"member": "pb"}"#).status == .ok)
            }
            #expect(try await api.call(.put, "/v2/images/\(sharedWithBob)/members/pb", token: Tok.bob, json: #"{"status": "accepted"}"#).status == .ok)
            #expect(try await api.call(.put, "/v2/images/\(rejectedByBob)/members/pb", token: Tok.bob, json: #"{"status": "rejected"}"#).status == .ok)

            let cases: [(String, String, Set<String>)] = [
                (Tok.alice, "", [alicePrivate, aliceShared, aliceCommunity, publicImage, sharedWithBob, pendingForBob, rejectedByBob]),
                (Tok.alice, "os_hidden=true", [aliceHidden]),
                (Tok.reader, "", [alicePrivate, aliceShared, aliceCommunity, publicImage, sharedWithBob, pendingForBob, rejectedByBob]),
                (Tok.bob, "", [bobPrivate, publicImage, sharedWithBob]),
                (Tok.bob, "visibility=community", [aliceCommunity]),
                (Tok.bob, "visibility=shared", [sharedWithBob]),
                (Tok.bob, "visibility=shared&member_status=pending", [pendingForBob]),
                (Tok.bob, "visibility=shared&member_status=rejected", [rejectedByBob]),
                (Tok.bob, "visibility=shared&member_status=all", [sharedWithBob, pendingForBob, rejectedByBob]),
                (Tok.bob, "visibility=private", [bobPrivate]),
                (Tok.bob, "visibility=public", [publicImage]),
                (Tok.bob, "visibility=all", [bobPrivate, publicImage, sharedWithBob, aliceCommunity]),
                (Tok.carol, "", [publicImage]),
                (Tok.carol, "visibility=all", [publicImage, aliceCommunity]),
                (Tok.admin, "", [alicePrivate, aliceShared, publicImage, bobPrivate, sharedWithBob, pendingForBob, rejectedByBob]),
                (Tok.admin, "visibility=community", [aliceCommunity]),
                (Tok.admin, "visibility=all", [alicePrivate, aliceShared, aliceCommunity, publicImage, bobPrivate, sharedWithBob, pendingForBob, rejectedByBob]),
            ]
            for (token, query, expected) in cases {
                let ids = try await api.listIDs(query + "&limit=100", token: token)
                #expect(Set(ids) == expected && ids.count == expected.count, "\(token) \(query)")
            }
            // A member may read a shared image whatever its membership status; others may not.
            #expect(try await api.call(.get, "/v2/images/\(pendingForBob)", token: Tok.bob).status == .ok)
            #expect(try await api.call(.get, "/v2/images/\(pendingForBob)", token: Tok.carol).status == .notFound)
            #expect(try await api.call(.get, "/v2/images/\(aliceCommunity)", token: Tok.carol).status == .ok)
            // Markers must be images the caller can see.
            #expect(try await api.call(.get, "/v2/images?marker=\(alicePrivate)", token: Tok.bob).status == .badRequest)
        }
    }

    @Test func limitIsClampedTo1000() async throws {
        try await withAPI { api in
            for _ in 0..<1003 { try await api.insert(status: .active, owner: "pa") }
            let r = try await api.call(.get, "/v2/images?limit=5000").json
            #expect(r["images"]?.arrayValue.count == 1000)
            #expect(r["next"]?.stringValue?.contains("limit=5000&marker=") == true)
            let rest = try await api.call(.get, r["next"]!.stringValue!).json
            #expect(rest["images"]?.arrayValue.count == 3)
            let zero = try await api.call(.get, "/v2/images?limit=0").json
            #expect(zero["images"]?.arrayValue.isEmpty == true)
        }
    }

    @Test func deletedAndKilledNeverListed() async throws {
        try await withAPI { api in
            let kept = try await api.create()
            let deleted = try await api.create()
            #expect(try await api.call(.delete, "/v2/images/\(deleted)").status == .noContent)
            let killed = try await api.insert(status: .killed)
            for token in [Tok.alice, Tok.admin] {
                let ids = try await api.listIDs("visibility=all", token: token)
                #expect(ids == [kept], "\(token)")
            }
            #expect(try await api.listIDs("status=deleted").isEmpty)
            #expect(try await api.listIDs("id=\(killed)").isEmpty)
        }
    }
}
