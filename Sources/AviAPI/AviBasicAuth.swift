import Foundation
import Identity
import ImageCore

/// `Authorization: Basic base64(user:password)` on every request (the seed's curl form; avisdk's
/// `user_hdrs`), against the local accounts. A password check is a deliberately slow PBKDF2, so a
/// verified pair is remembered for a few minutes, tied to the account's stored password record: a
/// changed password or a deleted account takes effect on the next request. Only SHA-256 digests of
/// the pairs are kept, in memory.
actor AviBasicAuth {
    struct Entry { let record: String; let until: ContinuousClock.Instant }
    private var verified: [String: Entry] = [:]
    static let remembered: Duration = .seconds(300)
    static let maxEntries = 1024

    /// The name and password of a `Basic` credential; nil when the header is not one.
    nonisolated static func credentials(_ header: String) -> (name: String, password: String)? {
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "basic",
              let data = Data(base64Encoded: parts[1].trimmingCharacters(in: .whitespaces)),
              let text = String(data: data, encoding: .utf8), let colon = text.firstIndex(of: ":") else { return nil }
        let name = String(text[..<colon])
        guard !name.isEmpty else { return nil }
        return (name, String(text[text.index(after: colon)...]))
    }

    /// The account's principal when the password matches; nil otherwise.
    func authenticate(name: String, password: String, client: String?, accounts: LocalAccounts) async throws -> Principal? {
        let key = Secrets.sha256Hex(name + "\u{0}" + password)
        if let entry = verified[key], entry.until > .now,
           let account = try await accounts.account(named: name), account.passwordHash == entry.record {
            return account.principal
        }
        verified[key] = nil
        guard try await accounts.authenticate(name: name, password: password, client: client) != nil,
              let account = try await accounts.account(named: name), let record = account.passwordHash else { return nil }
        let now = ContinuousClock.now
        if verified.count >= Self.maxEntries {
            verified = verified.filter { $0.value.until > now }
            if verified.count >= Self.maxEntries { verified.removeAll() }
        }
        verified[key] = Entry(record: record, until: now + Self.remembered)
        return account.principal
    }
}
