import ImageCore

/// Tells a caller's URL that a job ended (ZStack's `X-Web-Hook`, Danube's `cb_url`). Implemented in
/// Outbound: a callback URL is outbound traffic the caller chose, so it passes the same URL guard
/// as an import, with the same `--import-private` policy.
public protocol CallbackSender: Sendable {
    /// Refuses a URL the URL guard refuses for this principal: `ImageError.badRequest` naming the
    /// rule and the option that opens it. Front-ends call it when the job is asked for, so a bad
    /// callback URL is refused before anything is done.
    func vet(_ url: String, by p: Principal) async throws
    /// POSTs `body` once through the URL guard (connection pinned to the vetted address, short
    /// timeouts, no redirects followed). Never throws: a receiver that is down or slow costs the job
    /// nothing. True when the receiver answered 2xx.
    @discardableResult
    func post(_ url: String, body: [UInt8], headers: [(String, String)], asAdmin: Bool) async -> Bool
}
