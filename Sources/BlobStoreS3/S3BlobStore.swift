import AsyncHTTPClient
import Foundation
import ImageCore
import Logging
import NIOCore
import NIOHTTP1

/// Where the bucket is and how to sign for it.
public struct S3Config: Sendable {
    /// `http(s)://host[:port]` of the S3 service (RGW, AWS, MinIO…).
    public var endpoint: String
    public var bucket: String
    public var region = "us-east-1"
    public var accessKey: String
    public var secretKey: String
    /// `https://host/bucket/key` (RGW and most private stores) or `https://bucket.host/key`.
    public var pathStyle = true
    /// Prepended to every key, so several installations can share a bucket (e.g. `imaged/`).
    public var keyPrefix = ""
    /// Bytes per multipart part (S3's minimum is 5 MiB except for the last part).
    /// 16 MiB: bench/s3.sh measured uploads at 0.88 of `aws s3 cp` with 8 MiB parts and 1.00 with 16 MiB
    /// (fewer requests for the gateway to handle), for 64 MiB of buffers per upload.
    public var partSize = 16 << 20
    /// Parts uploaded at once per writer; memory per writer is about (this + 1) × partSize.
    public var partsInFlight = 3
    /// Attempts after the first for requests that can be repeated (5xx, throttling, lost connections).
    public var retries = 4
    public var requestTimeout: TimeAmount = .seconds(300)
    public var id = "s3"

    public init(endpoint: String, bucket: String, accessKey: String, secretKey: String) {
        self.endpoint = endpoint; self.bucket = bucket; self.accessKey = accessKey; self.secretKey = secretKey
    }
}

/// Image bytes as objects in an S3 bucket. A writer is a multipart upload (a single PUT when the
/// blob fits in one part): nothing is visible under the key until CompleteMultipartUpload, and
/// cancelling aborts the upload, so no part is left behind.
public final class S3BlobStore: BlobStore, BlobStoreOrphanReaping {
    public let config: S3Config
    let signer: SigV4Signer
    let client: HTTPClient
    let logger: Logger
    let hostHeader: String
    /// `scheme://host[:port]` requests go to (the bucket is in the host for virtual-host style).
    let origin: String

    public var id: String { config.id }

    public init(config: S3Config, client: HTTPClient = .shared, logger: Logger = Logger(label: "imaged.s3")) throws {
        guard let url = URL(string: config.endpoint), let scheme = url.scheme, scheme == "http" || scheme == "https",
              let host = url.host, !config.bucket.isEmpty, config.partSize >= 5 << 20, config.partsInFlight >= 1 else {
            throw BlobStoreError(.badConfiguration, "S3 endpoint must be http(s)://host[:port], with a bucket and parts of at least 5 MiB")
        }
        self.config = config
        self.signer = SigV4Signer(accessKey: config.accessKey, secretKey: config.secretKey, region: config.region)
        self.client = client
        self.logger = logger
        let port = url.port.map { ":\($0)" } ?? ""
        hostHeader = config.pathStyle ? host + port : "\(config.bucket).\(host)\(port)"
        origin = "\(scheme)://\(hostHeader)"
    }

    // MARK: Requests

    struct Reply {
        let status: Int
        let headers: HTTPHeaders
        let body: ByteBuffer
    }

    /// The object name for a blob key (checked like every store checks keys).
    func objectName(_ key: String) throws -> String {
        guard BlobKey.isValid(key) else { throw BlobStoreError(.invalidKey, "invalid blob key '\(key)'") }
        return config.keyPrefix + key
    }

    func path(_ object: String?) -> String {
        let bucketPath = config.pathStyle ? "/" + SigV4Signer.uriEncode(config.bucket, keepSlash: false) : ""
        guard let object else { return bucketPath + "/" }
        return bucketPath + "/" + SigV4Signer.uriEncode(object, keepSlash: true)
    }

    func makeRequest(_ method: HTTPMethod, object: String?, query: [(String, String)], headers extra: [(String, String)],
                     body: ByteBuffer?, payloadHash: String) -> HTTPClientRequest {
        let p = path(object)
        var url = origin + p
        if !query.isEmpty {
            url += "?" + query.map { $0.1.isEmpty && $0.0 == "uploads" ? "uploads" :
                "\(SigV4Signer.uriEncode($0.0, keepSlash: false))=\(SigV4Signer.uriEncode($0.1, keepSlash: false))" }
                .joined(separator: "&")
        }
        var headers: [(String, String)] = [("host", hostHeader)] + extra.map { ($0.0.lowercased(), $0.1) }
        let signed = signer.sign(method: method.rawValue, path: p, query: query, headers: headers,
                                 payloadHash: payloadHash, date: Date())
        headers.append(contentsOf: signed)
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers where name != "host" { request.headers.add(name: name, value: value) }
        if let body {
            request.body = .bytes(body)
            request.headers.replaceOrAdd(name: "content-length", value: String(body.readableBytes))
        }
        return request
    }

    /// One request with its whole answer read, retried with backoff when S3 says it may be.
    func send(_ method: HTTPMethod, object: String?, query: [(String, String)] = [], headers: [(String, String)] = [],
              body: ByteBuffer? = nil, signedBody: Bool = false, accept: Set<Int>) async throws -> Reply {
        let payloadHash: String
        if let body, signedBody { payloadHash = SigV4Signer.sha256Hex(Data(body.readableBytesView)) }
        else if body == nil || body?.readableBytes == 0 { payloadHash = SigV4Signer.emptyPayloadHash }
        else { payloadHash = SigV4Signer.unsignedPayload }
        var attempt = 0
        while true {
            try Task.checkCancellation()
            let request = makeRequest(method, object: object, query: query, headers: headers, body: body, payloadHash: payloadHash)
            do {
                let response = try await client.execute(request, timeout: config.requestTimeout)
                let bytes = try await response.body.collect(upTo: 16 << 20)
                let status = Int(response.status.code)
                if accept.contains(status) { return Reply(status: status, headers: response.headers, body: bytes) }
                let error = Self.error(status: status, body: bytes)
                guard Self.retryable(status), attempt < config.retries else { throw error }
                logger.warning("S3 request failed, retrying", metadata: ["status": "\(status)", "error": .string(error.message)])
            } catch let error as BlobStoreError {
                throw error
            } catch {
                // The connection failed (or the answer could not be read): S3 was not reached.
                if error is CancellationError || Task.isCancelled { throw CancellationError() }
                guard attempt < config.retries else { throw Self.unreachable(method, error) }
                logger.warning("S3 request failed, retrying", metadata: ["error": "\(error)"])
            }
            attempt += 1
            try await Self.backoff(attempt)
        }
    }

    /// Exponential, with jitter so retrying writers do not hit the store in step.
    static func backoff(_ attempt: Int) async throws {
        try await Task.sleep(for: .milliseconds(Int64(100 << min(attempt, 6)) + Int64.random(in: 0...100)))
    }

    static func retryable(_ status: Int) -> Bool { status == 500 || status == 502 || status == 503 || status == 504 || status == 429 }

    /// S3's error answer as a store error: its status, code and message, and the kind they mean.
    static func error(status: Int, body: ByteBuffer) -> BlobStoreError {
        let text = String(buffer: body)
        let code = S3XML.values("Code", in: text).first ?? "HTTP\(status)"
        let message = S3XML.values("Message", in: text).first ?? ""
        let kind: BlobStoreError.Kind = switch (status, code) {
        case (404, _): .notFound
        case (401, _), (403, _): .accessDenied
        case (416, _): .invalidRange
        case (_, "InternalError"), (_, "SlowDown"), (_, "ServiceUnavailable"): .unavailable
        case _ where retryable(status): .unavailable
        default: .io
        }
        return BlobStoreError(kind, "S3 \(status) \(code): \(message)")
    }

    /// A request that never got an answer, retries included.
    static func unreachable(_ method: HTTPMethod, _ error: any Error) -> BlobStoreError {
        BlobStoreError(.unavailable, "S3 \(method.rawValue) failed: \(error)")
    }

    // MARK: BlobStore

    public func makeWriter(key: String) async throws -> any BlobWriter {
        S3BlobWriter(store: self, object: try objectName(key))
    }

    public func size(key: String) async throws -> Int64? {
        let r = try await send(.HEAD, object: try objectName(key), accept: [200, 404])
        guard r.status == 200 else { return nil }
        return r.headers.first(name: "content-length").flatMap { Int64($0) }
    }

    public func read(key: String, range: Range<Int64>?, chunkSize: Int,
                     into sink: (ByteBuffer) async throws -> Void) async throws {
        if let range, range.isEmpty { return }
        var headers: [(String, String)] = []
        if let range { headers.append(("range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)")) }
        let object = try objectName(key)
        var attempt = 0
        while true {
            let request = makeRequest(.GET, object: object, query: [], headers: headers, body: nil,
                                      payloadHash: SigV4Signer.emptyPayloadHash)
            let response: HTTPClientResponse
            do {
                response = try await client.execute(request, timeout: config.requestTimeout)
            } catch {
                if error is CancellationError || Task.isCancelled { throw CancellationError() }
                guard attempt < config.retries else { throw Self.unreachable(.GET, error) }
                attempt += 1
                try await Self.backoff(attempt)
                continue
            }
            let status = Int(response.status.code)
            guard status == 200 || status == 206 else {
                // The status decides; an answer body that cannot be read only loses S3's code and message.
                let error = Self.error(status: status, body: (try? await response.body.collect(upTo: 1 << 20)) ?? ByteBuffer())
                guard Self.retryable(status), attempt < config.retries else { throw error }
                attempt += 1
                try await Self.backoff(attempt)
                continue
            }
            // Once bytes have reached the sink a retry would repeat them: failures from here on are final.
            // The sink's own errors are the caller's and go through as they are.
            var body = response.body.makeAsyncIterator()
            while true {
                let next: ByteBuffer?
                do { next = try await body.next() } catch {
                    if error is CancellationError || Task.isCancelled { throw CancellationError() }
                    throw Self.unreachable(.GET, error)
                }
                guard let buffer = next else { return }
                try await sink(buffer)
            }
        }
    }

    public func delete(key: String) async throws {
        _ = try await send(.DELETE, object: try objectName(key), accept: [200, 204, 404])
    }

    public func keys(prefix: String) async throws -> [String] {
        var keys: [String] = []
        var token: String?
        repeat {
            var query = [("list-type", "2"), ("prefix", config.keyPrefix + prefix)]
            if let token { query.append(("continuation-token", token)) }
            let r = try await send(.GET, object: nil, query: query, accept: [200])
            let text = String(buffer: r.body)
            for block in S3XML.blocks("Contents", in: text) {
                if let k = S3XML.values("Key", in: block).first { keys.append(String(k.dropFirst(config.keyPrefix.count))) }
            }
            token = S3XML.values("IsTruncated", in: text).first == "true" ? S3XML.values("NextContinuationToken", in: text).first : nil
        } while token != nil
        return keys
    }

    /// Multipart uploads begun under our prefix and never completed or aborted.
    public func incompleteUploads() async throws -> [(key: String, uploadId: String)] {
        try await openUploads().map { ($0.object, $0.uploadId) }
    }

    /// Every open multipart upload under our prefix (`GET /?uploads&prefix=`, all pages).
    func openUploads() async throws -> [S3MultipartListing.Upload] {
        var found: [S3MultipartListing.Upload] = []
        var keyMarker: String?, idMarker: String?
        repeat {
            var query = [("uploads", ""), ("prefix", config.keyPrefix)]
            if let keyMarker { query.append(("key-marker", keyMarker)) }
            if let idMarker { query.append(("upload-id-marker", idMarker)) }
            let r = try await send(.GET, object: nil, query: query, accept: [200])
            let page = S3MultipartListing(xml: String(buffer: r.body))
            found += page.uploads
            (keyMarker, idMarker) = page.truncated ? (page.nextKeyMarker, page.nextUploadIdMarker) : (nil, nil)
        } while keyMarker != nil
        return found
    }

    /// A crash leaves multipart uploads open: abort every one under our prefix.
    public func removeLeftovers() async throws -> Int {
        let open = try await incompleteUploads()
        for (object, uploadId) in open {
            try await abort(object: object, uploadId: uploadId)
        }
        return open.count
    }

    /// Aborts the multipart uploads under our prefix begun more than `maxAge` seconds before `now`:
    /// what a node that died mid-upload left (its parts cost space until aborted). Uploads a live
    /// node is writing are younger: a stalled upload is cancelled well before `maxAge`. An upload
    /// whose start S3 did not say is left alone. Returns how many were aborted.
    public func abortStaleUploads(maxAge: Int64, now: Int64, keeping: [String]) async throws -> Int {
        var aborted = 0
        let kept = Self.uploadIds(keeping)
        for upload in try await openUploads() where upload.isOlder(than: maxAge, now: now) && !kept.contains(upload.uploadId) {
            try await abort(object: upload.object, uploadId: upload.uploadId)
            logger.notice("aborted an orphan multipart upload", metadata: [
                "object": .string(upload.object), "initiated": "\(upload.initiated ?? 0)"])
            aborted += 1
        }
        return aborted
    }

    // MARK: Multipart

    func createUpload(object: String) async throws -> String {
        let r = try await send(.POST, object: object, query: [("uploads", "")], accept: [200])
        guard let id = S3XML.values("UploadId", in: String(buffer: r.body)).first, !id.isEmpty else {
            throw BlobStoreError(.io, "S3 \(r.status) NoUploadId: CreateMultipartUpload answered without an UploadId")
        }
        return id
    }

    func uploadPart(object: String, uploadId: String, number: Int, bytes: ByteBuffer) async throws -> String {
        let r = try await send(.PUT, object: object, query: [("partNumber", String(number)), ("uploadId", uploadId)],
                               body: bytes, accept: [200])
        guard let etag = r.headers.first(name: "etag") else {
            throw BlobStoreError(.io, "S3 \(r.status) NoETag: UploadPart answered without an ETag")
        }
        return etag
    }

    func complete(object: String, uploadId: String, parts: [(Int, String)]) async throws {
        var xml = "<CompleteMultipartUpload>"
        for (n, etag) in parts.sorted(by: { $0.0 < $1.0 }) {
            xml += "<Part><PartNumber>\(n)</PartNumber><ETag>\(S3XML.escape(etag))</ETag></Part>"
        }
        xml += "</CompleteMultipartUpload>"
        let r = try await send(.POST, object: object, query: [("uploadId", uploadId)],
                               headers: [("content-type", "application/xml")],
                               body: ByteBuffer(string: xml), signedBody: true, accept: [200])
        // S3 may answer 200 and still report a failure in the body.
        let text = String(buffer: r.body)
        if text.contains("<Error>") { throw Self.error(status: 200, body: r.body) }
    }

    func abort(object: String, uploadId: String) async throws {
        _ = try await send(.DELETE, object: object, query: [("uploadId", uploadId)], accept: [200, 204, 404])
    }

    func putObject(object: String, bytes: ByteBuffer) async throws {
        _ = try await send(.PUT, object: object, body: bytes, accept: [200])
    }
}

/// One blob on its way into S3: parts are uploaded as soon as they fill, a few at a time.
/// A resumable blob's writer (`resumable` set) checkpoints its parts into a token and keeps the
/// bytes short of a part in a side object, so another request (on any node) continues it.
actor S3BlobWriter: ResumableBlobWriter {
    let store: S3BlobStore
    let object: String
    var buffer: ByteBuffer
    var uploadId: String?
    var nextPart = 1
    var inFlight: [Task<(Int, String), any Error>] = []
    var done: [(Int, String)] = []
    var finished = false
    var resumable: S3ResumeToken?

    init(store: S3BlobStore, object: String) {
        self.store = store
        self.object = object
        buffer = ByteBufferAllocator().buffer(capacity: 0)
    }

    /// Continues the resumable blob of `token`: its parts as recorded, `tail` the bytes after them.
    init(store: S3BlobStore, resuming token: S3ResumeToken, tail: ByteBuffer) {
        self.store = store
        self.object = token.object
        self.uploadId = token.uploadId
        self.done = token.parts.map { ($0.number, $0.etag) }
        self.nextPart = token.parts.count + 1
        self.buffer = tail
        self.resumable = token
    }

    func checkpoint() async throws -> String {
        guard !finished, var token = resumable, let uploadId else {
            throw BlobStoreError(.writerClosed, "S3 blob writer: checkpoint of a writer that is not resumable or has ended")
        }
        while !inFlight.isEmpty { done.append(try await inFlight.removeFirst().value) }
        token.uploadId = uploadId
        token.parts = done.sorted { $0.0 < $1.0 }.map { S3ResumeToken.Part(number: $0.0, etag: $0.1) }
        token.tail = nil
        token.tailLength = buffer.readableBytes
        if buffer.readableBytes > 0 {
            // A new name per checkpoint: a crash between this PUT and the catalog's record leaves the
            // recorded tail intact.
            let offset = Int64(token.parts.count) * Int64(token.partSize) + Int64(buffer.readableBytes)
            let key = S3ResumeToken.tailPrefix(token.session) + String(offset)
            try await store.putObject(object: try store.objectName(key), bytes: buffer)
            token.tail = key
        }
        resumable = token
        return try token.encoded()
    }

    func suspend() async {
        guard !finished else { return }
        finished = true
        // Parts still in flight finish (or fail) unrecorded: the next writer sends them again.
        for t in inFlight { _ = try? await t.value }
        inFlight.removeAll()
        buffer = ByteBufferAllocator().buffer(capacity: 0)
    }

    func write(_ bytes: ByteBuffer) async throws {
        guard !finished else { throw BlobStoreError(.writerClosed, "S3 blob writer: write after commit or cancel") }
        var bytes = bytes
        let partSize = store.config.partSize
        while bytes.readableBytes > 0 {
            if buffer.capacity == 0 { buffer.reserveCapacity(partSize) }
            var slice = bytes.readSlice(length: min(bytes.readableBytes, partSize - buffer.readableBytes))!
            buffer.writeBuffer(&slice)
            if buffer.readableBytes == partSize { try await sendPart() }
        }
    }

    /// Hands the full buffer to a part upload, waiting for the oldest when enough are in flight.
    func sendPart() async throws {
        if uploadId == nil { uploadId = try await store.createUpload(object: object) }
        while inFlight.count >= store.config.partsInFlight {
            done.append(try await inFlight.removeFirst().value)
        }
        let part = buffer, number = nextPart, id = uploadId!, store = store, object = object
        nextPart += 1
        buffer = ByteBufferAllocator().buffer(capacity: 0)
        inFlight.append(Task { (number, try await store.uploadPart(object: object, uploadId: id, number: number, bytes: part)) })
    }

    func commit() async throws {
        guard !finished else { throw BlobStoreError(.writerClosed, "S3 blob writer: commit after commit or cancel") }
        do {
            if uploadId == nil {
                try await store.putObject(object: object, bytes: buffer)
            } else {
                // An empty resumable blob still needs one (empty) part to complete.
                if buffer.readableBytes > 0 || (done.isEmpty && inFlight.isEmpty) { try await sendPart() }
                while !inFlight.isEmpty { done.append(try await inFlight.removeFirst().value) }
                try await store.complete(object: object, uploadId: uploadId!, parts: done)
            }
            finished = true
            buffer = ByteBufferAllocator().buffer(capacity: 0)
            if let session = resumable?.session { await store.deleteTails(session) }
        } catch {
            await cancel()
            throw error
        }
    }

    func cancel() async {
        guard !finished else { return }
        finished = true
        buffer = ByteBufferAllocator().buffer(capacity: 0)
        for t in inFlight { t.cancel() }
        for t in inFlight { _ = try? await t.value }
        inFlight.removeAll()
        if let uploadId {
            // Even when the caller is being cancelled: parts must not stay behind.
            let store = store, object = object, session = resumable?.session
            await Task.detached {
                try? await store.abort(object: object, uploadId: uploadId)
                if let session { await store.deleteTails(session) }
            }.value
        }
    }
}

/// One page of ListMultipartUploads (`GET /?uploads`).
public struct S3MultipartListing: Sendable, Equatable {
    public struct Upload: Sendable, Equatable {
        public var object: String
        public var uploadId: String
        /// When the upload began (seconds since the epoch); nil when S3 did not say or said it oddly.
        public var initiated: Int64?

        public func isOlder(than maxAge: Int64, now: Int64) -> Bool {
            guard let initiated else { return false }
            return now - initiated > maxAge
        }
    }
    public var uploads: [Upload] = []
    public var truncated = false
    public var nextKeyMarker: String?
    public var nextUploadIdMarker: String?

    public init(xml text: String) {
        for block in S3XML.blocks("Upload", in: text) {
            guard let k = S3XML.values("Key", in: block).first, let u = S3XML.values("UploadId", in: block).first else { continue }
            uploads.append(Upload(object: k, uploadId: u, initiated: S3XML.values("Initiated", in: block).first.flatMap(Self.epoch)))
        }
        truncated = S3XML.values("IsTruncated", in: text).first == "true"
        nextKeyMarker = S3XML.values("NextKeyMarker", in: text).first.flatMap { $0.isEmpty ? nil : $0 }
        nextUploadIdMarker = S3XML.values("NextUploadIdMarker", in: text).first.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// S3's timestamps: ISO 8601 in UTC, with or without fractional seconds (`2026-12-03T19:42:37.000Z`).
    static func epoch(_ text: String) -> Int64? {
        let plain = ISO8601DateFormatter()
        if let d = plain.date(from: text) { return Int64(d.timeIntervalSince1970) }
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return fractional.date(from: text).map { Int64($0.timeIntervalSince1970) }
    }
}

/// Just enough XML for S3's answers: values of simple elements, entity-decoded.
enum S3XML {
    static func values(_ tag: String, in text: String) -> [String] {
        blocks(tag, in: text).map(unescape)
    }

    static func blocks(_ tag: String, in text: String) -> [String] {
        var out: [String] = []
        var rest = Substring(text)
        let open = "<\(tag)>", close = "</\(tag)>"
        while let o = rest.range(of: open), let c = rest.range(of: close, range: o.upperBound..<rest.endIndex) {
            out.append(String(rest[o.upperBound..<c.lowerBound]))
            rest = rest[c.upperBound...]
        }
        return out
    }

    static func unescape(_ s: String) -> String {
        guard s.contains("&") else { return s }
        return s.replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&apos;", with: "'")
            .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&amp;", with: "&")
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
