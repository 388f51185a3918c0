import Foundation
import ImageCore
import Testing

/// Metadata definitions on both catalogs: atomic namespace creation, renames and deletes that carry
/// the contents along, clashes, tags' bulk replace, resource types, and the service's policy on top.
@Suite struct MetadefConformance {
    static func ns(_ name: String, visibility: String = "public", owner: String? = "p1", protected: Bool = false) -> MetadefNamespace {
        MetadefNamespace(namespace: name, displayName: "D \(name)", description: nil, visibility: visibility, isProtected: protected,
                         owner: owner, createdAt: 100, updatedAt: 100)
    }

    static func item(_ ns: String, _ kind: MetadefKind, _ name: String, _ doc: JSONValue = .object([]), at: Int64 = 100) -> MetadefItem {
        MetadefItem(namespace: ns, kind: kind, name: name, document: doc, createdAt: at, updatedAt: at)
    }

    @Test(arguments: Backend.available)
    func namespacesWithContentsRenameDeleteAndClash(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            let prop = JSONValue.object([("title", .string("Cores")), ("type", .string("integer")), ("minimum", .int(1))])
            try await catalog.insertMetadefNamespace(
                Self.ns("A"), associations: [MetadefAssociation(namespace: "A", resourceType: "OS::New::Type", prefix: "hw_", createdAt: 100, updatedAt: 100)],
                items: [Self.item("A", .property, "cores", prop), Self.item("A", .tag, "t1"), Self.item("A", .object, "o1", .object([("required", .array([.string("cores")]))]))])
            #expect(try await catalog.metadefNamespace("A") == Self.ns("A"))
            #expect(try await catalog.metadefItem(namespace: "A", kind: .property, name: "cores")?.document == prop)
            #expect(try await catalog.metadefResourceTypes().map(\.name) == ["OS::New::Type"])

            // A clash in any part stores nothing of the new namespace.
            await #expect(throws: MetadefClash.self) {
                try await catalog.insertMetadefNamespace(Self.ns("B"), associations: [],
                                                         items: [Self.item("B", .tag, "x"), Self.item("B", .tag, "x")])
            }
            #expect(try await catalog.metadefNamespace("B") == nil)
            #expect(try await catalog.metadefItems(namespace: "B", kind: .tag).isEmpty)
            await #expect(throws: MetadefClash.self) { try await catalog.insertMetadefNamespace(Self.ns("A"), associations: [], items: []) }

            // Renaming carries the contents; renaming onto another namespace clashes.
            try await catalog.insertMetadefNamespace(Self.ns("C"), associations: [], items: [])
            var renamed = Self.ns("A2"); renamed.updatedAt = 200
            #expect(try await catalog.updateMetadefNamespace("A", to: renamed))
            #expect(try await catalog.metadefNamespace("A") == nil)
            #expect(try await catalog.metadefItems(namespace: "A2", kind: .tag).map(\.name) == ["t1"])
            #expect(try await catalog.metadefAssociations(namespace: "A2").map(\.prefix) == ["hw_"])
            await #expect(throws: MetadefClash.self) { _ = try await catalog.updateMetadefNamespace("C", to: Self.ns("A2")) }
            #expect(try await !catalog.updateMetadefNamespace("nope", to: Self.ns("nope")))

            // Deleting takes the contents; the resource type stays listed.
            #expect(try await catalog.deleteMetadefNamespace("A2"))
            #expect(try await !catalog.deleteMetadefNamespace("A2"))
            #expect(try await catalog.metadefItems(namespace: "A2", kind: .property).isEmpty)
            #expect(try await catalog.metadefAssociations(namespace: nil).isEmpty)
            #expect(try await catalog.metadefResourceTypes().map(\.name) == ["OS::New::Type"])
        }
    }

    @Test(arguments: Backend.available)
    func itemsTagsReplaceAssociationsAndLoadedSets(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            try await catalog.insertMetadefNamespace(Self.ns("N"), associations: [], items: [])
            try await catalog.insertMetadefItems([Self.item("N", .tag, "a"), Self.item("N", .tag, "b", at: 101)], namespace: "N", kind: .tag, replacing: false)
            await #expect(throws: MetadefClash.self) {
                try await catalog.insertMetadefItems([Self.item("N", .tag, "c"), Self.item("N", .tag, "a")], namespace: "N", kind: .tag, replacing: false)
            }
            #expect(try await catalog.metadefItems(namespace: "N", kind: .tag).map(\.name) == ["a", "b"])
            try await catalog.insertMetadefItems([Self.item("N", .tag, "z"), Self.item("N", .tag, "a", at: 102)], namespace: "N", kind: .tag, replacing: true)
            #expect(try await catalog.metadefItems(namespace: "N", kind: .tag).map(\.name) == ["z", "a"])
            // Same name, another kind: no clash.
            try await catalog.insertMetadefItems([Self.item("N", .object, "a")], namespace: "N", kind: .object, replacing: false)
            #expect(try await catalog.updateMetadefItem(namespace: "N", kind: .tag, name: "a", to: Self.item("N", .tag, "a2")))
            await #expect(throws: MetadefClash.self) {
                _ = try await catalog.updateMetadefItem(namespace: "N", kind: .tag, name: "a2", to: Self.item("N", .tag, "z"))
            }
            #expect(try await catalog.deleteMetadefItems(namespace: "N", kind: .tag, name: "z") == 1)
            #expect(try await catalog.deleteMetadefItems(namespace: "N", kind: .tag, name: nil) == 1)
            #expect(try await catalog.metadefItems(namespace: "N", kind: .object).map(\.name) == ["a"])

            try await catalog.ensureMetadefResourceTypes(["OS::Glance::Image", "OS::Nova::Flavor"], at: 5)
            try await catalog.ensureMetadefResourceTypes(["OS::Glance::Image"], at: 9)
            let a = MetadefAssociation(namespace: "N", resourceType: "OS::Glance::Image", prefix: nil, propertiesTarget: "image", createdAt: 7, updatedAt: 7)
            try await catalog.insertMetadefAssociation(a)
            await #expect(throws: MetadefClash.self) { try await catalog.insertMetadefAssociation(a) }
            #expect(try await catalog.metadefAssociations(namespace: "N") == [a])
            #expect(try await catalog.metadefResourceTypes() == [MetadefResourceType(name: "OS::Glance::Image", createdAt: 5, updatedAt: 5),
                                                                 MetadefResourceType(name: "OS::Nova::Flavor", createdAt: 5, updatedAt: 5)])
            #expect(try await catalog.deleteMetadefAssociation(namespace: "N", resourceType: "OS::Glance::Image"))
            #expect(try await !catalog.deleteMetadefAssociation(namespace: "N", resourceType: "OS::Glance::Image"))

            #expect(try await !catalog.metadefSetLoaded("shipped-v1"))
            try await catalog.markMetadefSetLoaded("shipped-v1", at: 1)
            try await catalog.markMetadefSetLoaded("shipped-v1", at: 2)
            #expect(try await catalog.metadefSetLoaded("shipped-v1"))
        }
    }

    static let admin = Principal(userId: "admin", projectId: "adm", roles: ["admin"])
    static let member1 = Principal(userId: "u1", projectId: "p1", roles: ["member"])
    static let reader2 = Principal(userId: "u2", projectId: "p2", roles: ["reader"])

    /// The service over a real catalog: Glance's default policy and the shipped set loaded once.
    @Test(arguments: Backend.available)
    func servicePolicyProtectionAndShippedSet(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            let service = ImageService(catalog: catalog).metadefs
            #expect(try await service.loadShippedOnce())
            let shipped = try await service.listNamespaces(.init(), by: Self.reader2).namespaces.map(\.namespace.namespace)
            #expect(shipped.contains("OS::Compute::Hardware") && shipped.contains("OS::OperatingSystem"))
            let types = try await service.resourceTypes(by: Self.reader2).map(\.name)
            #expect(Set(ShippedMetadefs.resourceTypes).isSubset(of: Set(types)))
            // An operator's deletion is not undone by the next start.
            await #expect(throws: ImageError.self) { try await service.deleteNamespace("OS::Compute::Watchdog", by: Self.admin) }
            _ = try await service.updateNamespace("OS::Compute::Watchdog", .object([("namespace", .string("OS::Compute::Watchdog")),
                                                                                    ("visibility", .string("public"))]), by: Self.admin)
            try await service.deleteNamespace("OS::Compute::Watchdog", by: Self.admin)
            #expect(try await !service.loadShippedOnce())
            await #expect(throws: ImageError.self) { _ = try await service.namespace("OS::Compute::Watchdog", by: Self.admin) }

            // Prefixes: `?resource_type=` shows names as that resource type knows them.
            let flavor = try await service.namespace("OS::Compute::CPUTopology", resourceType: "OS::Nova::Flavor", by: Self.reader2)
            #expect(flavor.properties.map(\.name).contains("hw:cpu_sockets"))
            let p = try await service.item(.property, namespace: "OS::Compute::CPUTopology", name: "hw_cpu_cores",
                                           resourceType: "OS::Glance::Image", by: Self.reader2)
            #expect(p.name == "hw_cpu_cores" && p.document["type"] == .string("integer"))

            // Members may not write; a private namespace is invisible (404) to other projects.
            let body = JSONValue.object([("namespace", .string("Private::One")), ("owner", .string("p1"))])
            do { _ = try await service.createNamespace(body, by: Self.member1); Issue.record("member created a namespace") } catch let e as ImageError {
                #expect(e.kind == .forbidden)
            }
            _ = try await service.createNamespace(body, by: Self.admin)
            let reader1 = Principal(userId: "r1", projectId: "p1", roles: ["reader"])
            #expect(try await service.namespace("Private::One", by: reader1).namespace.visibility == "private")
            do { _ = try await service.namespace("Private::One", by: Self.reader2); Issue.record("visible to another project") } catch let e as ImageError {
                #expect(e.kind == .notFound)
            }
            do { _ = try await service.createItem(.tag, namespace: "Private::One", body: .object([("name", .string("x"))]), by: Self.member1)
                Issue.record("member wrote a tag") } catch let e as ImageError { #expect(e.kind == .forbidden) }
            do { _ = try await service.createNamespace(body, by: Self.admin); Issue.record("duplicate accepted") } catch let e as ImageError {
                #expect(e.kind == .conflict)
            }
        }
    }
}
