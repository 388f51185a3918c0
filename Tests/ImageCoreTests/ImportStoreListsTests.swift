import ImageCore
import Testing

/// Glance's `os_glance_importing_to_stores` / `os_glance_failed_import` bookkeeping (merge_store_list).
@Suite struct ImportStoreListsTests {
    func image(_ properties: [String: String] = [:]) -> Image {
        Image(id: "i-1", createdAt: 0, updatedAt: 0, properties: properties)
    }

    @Test func startingListsTheTargetsSortedAndClearsTheirEarlierFailures() {
        var i = image([ImageService.failedImportKey: "fast,tape"])
        i.markImporting("fast,cheap,archive")
        #expect(i.properties[ImageService.importingToStoresKey] == "archive,cheap,fast")
        #expect(i.properties[ImageService.failedImportKey] == "tape")
    }

    @Test func eachStoreLeavesTheImportingListAndAFailureIsRecorded() {
        var i = image()
        i.markImporting("fast,cheap")
        #expect(i.properties[ImageService.failedImportKey] == "")  // present, empty
        i.storeImportDone("fast", failed: false)
        #expect(i.properties[ImageService.importingToStoresKey] == "cheap")
        i.storeImportDone("cheap", failed: true)
        #expect(i.properties[ImageService.importingToStoresKey] == "")
        #expect(i.properties[ImageService.failedImportKey] == "cheap")
    }

    @Test func finishingDropsTheLockAndLeavesBothListsPresent() {
        var i = image([ImageService.importLockKey: "task-1"])
        i.markImporting("b,a")
        i.finishImport(failedStores: "")
        #expect(i.properties[ImageService.importLockKey] == nil)
        #expect(i.properties[ImageService.importingToStoresKey] == "")
        #expect(i.properties[ImageService.failedImportKey] == "")
        i.markImporting("c")
        i.finishImport(failedStores: "c,a")
        #expect(i.properties[ImageService.failedImportKey] == "a,c")
    }
}
