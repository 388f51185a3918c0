import ImageCore

/// `imaged migrate` carries the metadata definitions too: every namespace with its contents, the
/// resource types, and which definition sets were loaded (so the target does not load the shipped
/// set again over an operator's deletions). A namespace already in the target is replaced.
extension Migration {
    func copyMetadefs() async throws -> Int {
        let from = source.catalog, to = target.catalog
        try await to.ensureMetadefResourceTypes(try await from.metadefResourceTypes().map(\.name), at: Timestamp.now())
        var copied = 0
        for ns in try await from.metadefNamespaces() {
            var items: [MetadefItem] = []
            for kind in MetadefKind.allCases { items += try await from.metadefItems(namespace: ns.namespace, kind: kind) }
            let associations = try await from.metadefAssociations(namespace: ns.namespace)
            _ = try await to.deleteMetadefNamespace(ns.namespace)
            try await to.insertMetadefNamespace(ns, associations: associations, items: items)
            copied += 1
        }
        if try await from.metadefSetLoaded(MetadefService.shippedSet) {
            try await to.markMetadefSetLoaded(MetadefService.shippedSet, at: Timestamp.now())
        }
        return copied
    }
}
