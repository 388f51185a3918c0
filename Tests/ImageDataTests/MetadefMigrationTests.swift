import ImageCore
import ImageData
import Testing

/// `imaged migrate` carries metadata definitions: an operator's own namespace with its contents,
/// and the shipped set's "loaded" mark, so the target does not bring back what the operator deleted.
@Suite struct MetadefMigrationTests {
    @Test func namespacesContentsAndTheLoadedMarkAreCopied() async throws {
        let source = try Node(), target = try Node()
        defer { source.remove(); target.remove() }
        let metadefs = source.service.metadefs
        #expect(try await metadefs.loadShippedOnce())
        // Unprotected first (a protected namespace refuses deletion).
        _ = try await metadefs.updateNamespace("OS::Compute::Watchdog", .object([("namespace", .string("OS::Compute::Watchdog"))]), by: source.admin)
        try await metadefs.deleteNamespace("OS::Compute::Watchdog", by: source.admin)
        let site = try JSONValue.parse("""
            {"namespace": "Site::Backup", "visibility": "private", "owner": "p",
             "resource_type_associations": [{"name": "Site::Type", "prefix": "s_"}],
             "properties": {"policy": {"title": "Policy", "type": "string", "enum": ["daily", "never"]}},
             "objects": [{"name": "Retention", "required": ["days"], "properties": {"days": {"title": "Days", "type": "integer"}}}],
             "tags": [{"name": "backup"}]}
            """)
        _ = try await metadefs.createNamespace(site, by: source.admin)

        let report = try await Migration(from: .init(catalog: source.catalog, blobs: source.blobs),
                                         to: .init(catalog: target.catalog, blobs: target.blobs)).run()
        let expected = try await source.catalog.metadefNamespaces().count
        #expect(report.metadefNamespaces == expected && report.description.contains("metadef namespaces \(expected)"))
        let copied = try await target.service.metadefs.namespace("Site::Backup", by: target.admin)
        #expect(copied.namespace == (try await source.catalog.metadefNamespace("Site::Backup")))
        #expect(copied.properties.map(\.name) == ["policy"] && copied.objects.first?.document["required"] == .array([.string("days")]))
        #expect(copied.tags.map(\.name) == ["backup"] && copied.associations.map(\.prefix) == ["s_"])
        #expect(try await target.catalog.metadefResourceTypes().map(\.name).contains("OS::Nova::Aggregate"))
        // The operator's deletion stays: the target knows the shipped set was loaded.
        #expect(try await !target.service.metadefs.loadShippedOnce())
        #expect(try await target.catalog.metadefNamespace("OS::Compute::Watchdog") == nil)
        // Running it again replaces rather than clashes.
        let again = try await Migration(from: .init(catalog: source.catalog, blobs: source.blobs),
                                        to: .init(catalog: target.catalog, blobs: target.blobs)).run()
        #expect(again.metadefNamespaces == expected)
    }
}
