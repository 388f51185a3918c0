import ImageCore

/// `/readyz`: the catalog answers and every store answers a lookup (a missing probe key is fine;
/// an error is not), each within a few seconds.
public struct Readiness: Sendable {
    let catalog: any Catalog
    let stores: [any BlobStore]

    public func check() async -> (Bool, JSONValue) {
        var checks: [(String, JSONValue)] = []
        var ready = true
        func probe(_ name: String, _ work: @escaping @Sendable () async throws -> Void) async {
            let outcome: String? = await withTaskGroup(of: String?.self) { group in
                group.addTask {
                    do { try await work(); return nil } catch { return "\(error)" }
                }
                group.addTask {
                    try? await Task.sleep(for: .seconds(5))
                    return "no answer within 5 s"
                }
                let first = await group.next()!
                group.cancelAll()
                return first
            }
            if let outcome { ready = false; checks.append((name, .string(outcome))) } else { checks.append((name, .string("ok"))) }
        }
        let catalog = self.catalog
        await probe("catalog") { _ = try await catalog.image(id: "00000000-0000-0000-0000-000000000000") }
        for store in stores {
            await probe("store:\(store.id)") { _ = try await store.size(key: "images/readyz-probe") }
        }
        return (ready, .object([("status", .string(ready ? "ready" : "not ready")), ("checks", .object(checks))]))
    }
}
