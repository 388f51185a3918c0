import Foundation

/// Per-project limits as an admin sets them from the web console (`imaged quota set` does the same on
/// the command line): the overrides of the configured `--quota-*` defaults.
extension ImageService {
    public func quotaOverrides(by p: Principal) async throws -> [String: QuotaLimits] {
        guard p.isAdmin else { throw ImageError.forbidden("Only an admin may read the quota settings.") }
        return try await catalog.quotaOverrides()
    }

    /// The configured defaults (what a project without an override gets).
    public var defaultQuota: QuotaLimits { config.quota }

    /// Sets a project's overrides (a nil limit: the default applies), or with nil removes them all.
    /// Lowering a limit under the current usage is allowed: it stops growth, it deletes nothing.
    public func setQuotaOverride(project: String, _ limits: QuotaLimits?, by p: Principal) async throws {
        guard p.isAdmin else { throw ImageError.forbidden("Only an admin may set quotas.") }
        let project = project.trimmingCharacters(in: .whitespaces)
        guard !project.isEmpty, project.utf8.count <= 255 else { throw ImageError.badRequest("A quota needs a project id.") }
        if let limits {
            for r in QuotaResource.allCases { if let v = limits[r], v < 0 { throw ImageError.badRequest("\(r.rawValue) must not be negative.") } }
        }
        AuditTrail.note("quota.set", by: p)
        try await catalog.setQuotaOverride(project: project, limits.flatMap { $0.isUnlimited ? nil : $0 })
    }
}
