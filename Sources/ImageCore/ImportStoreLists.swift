/// Glance's import progress lists on the image (`_ImportActions.merge_store_list` in
/// glance/async_/flows/api_image_import.py): `os_glance_importing_to_stores` names the stores an import or
/// copy still has to write, `os_glance_failed_import` those that failed. Both are sorted, comma-joined and,
/// once an import has started, always present (empty when none): Tempest's `wait_for_image_copied_to_stores`
/// waits for the first to be present and empty.
extension Image {
    /// The import or copy starts for `stores` (comma-joined): they join the importing list and leave the failed one.
    public mutating func markImporting(_ stores: String) {
        let targets = Self.storeList(stores)
        mergeStoreList(ImageService.importingToStoresKey, targets)
        mergeStoreList(ImageService.failedImportKey, targets, subtract: true)
    }

    /// One store is done: it leaves the importing list, and joins the failed one when it failed.
    public mutating func storeImportDone(_ store: String, failed: Bool) {
        mergeStoreList(ImageService.importingToStoresKey, [store], subtract: true)
        if failed { mergeStoreList(ImageService.failedImportKey, [store]) }
    }

    /// The import or copy has ended: its lock goes, nothing is left importing, `failedStores`
    /// (comma-joined) join the failed list.
    public mutating func finishImport(failedStores: String? = nil) {
        properties.removeValue(forKey: ImageService.importLockKey)
        properties[ImageService.importingToStoresKey] = ""
        mergeStoreList(ImageService.failedImportKey, Self.storeList(failedStores ?? ""))
    }

    mutating func mergeStoreList(_ key: String, _ stores: [String], subtract: Bool = false) {
        let existing = Set(Self.storeList(properties[key] ?? ""))
        let merged = subtract ? existing.subtracting(stores) : existing.union(stores)
        properties[key] = merged.sorted().joined(separator: ",")
    }

    static func storeList(_ text: String) -> [String] {
        text.split(separator: ",").map(String.init).filter { !$0.isEmpty }
    }
}
