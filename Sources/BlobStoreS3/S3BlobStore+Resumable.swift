import Foundation
import ImageCore
import NIOCore

/// A resumable blob in S3: one multipart upload whose completed parts are listed in the token, plus
/// the bytes short of a part in a side object (`uploads/<session>.tail-<offset>`). Parts cover fixed
/// spans of the blob (`partSize`), so any writer, on any node, continues the numbering.
public struct S3ResumeToken: Codable, Sendable, Equatable {
    public struct Part: Codable, Sendable, Equatable {
        public var number: Int
        public var etag: String
    }
    public var session: String
    public var object: String
    public var uploadId: String
    public var partSize: Int
    public var parts: [Part] = []
    public var tail: String?
    public var tailLength = 0

    static func tailPrefix(_ session: String) -> String { "uploads/\(session).tail-" }

    var offset: Int64 { Int64(parts.count) * Int64(partSize) + Int64(tailLength) }

    func encoded() throws -> String { String(decoding: try JSONEncoder().encode(self), as: UTF8.self) }

    static func decode(_ token: String) throws -> S3ResumeToken {
        do { return try JSONDecoder().decode(S3ResumeToken.self, from: Data(token.utf8)) } catch {
            throw BlobStoreError(.io, "not an S3 resumable blob token: \(error)")
        }
    }
}

extension S3BlobStore: ResumableBlobStore {
    public var checkpointAlignment: Int64 { Int64(config.partSize) }

    public func beginResumable(key: String, session: String) async throws -> String {
        let object = try objectName(key)
        let id = try await createUpload(object: object)
        return try S3ResumeToken(session: session, object: object, uploadId: id, partSize: config.partSize).encoded()
    }

    public func resumeWriter(key: String, token: String, offset: Int64) async throws -> any ResumableBlobWriter {
        let t = try S3ResumeToken.decode(token)
        guard t.object == (try objectName(key)) else {
            throw BlobStoreError(.io, "resumable blob token is for \(t.object), not \(key)")
        }
        guard t.offset == offset else {
            throw BlobStoreError(.io, "resumable blob token holds \(t.offset) bytes, not the checkpoint's \(offset)")
        }
        var tail = ByteBufferAllocator().buffer(capacity: t.partSize)
        if let key = t.tail, t.tailLength > 0 {
            try await read(key: key, range: nil, chunkSize: 1 << 20) { var b = $0; tail.writeBuffer(&b) }
            guard tail.readableBytes == t.tailLength else {
                throw BlobStoreError(.io, "resumable blob tail \(key) holds \(tail.readableBytes) bytes, not \(t.tailLength)")
            }
        }
        return S3BlobWriter(store: self, resuming: t, tail: tail)
    }

    public func discardResumable(token: String) async {
        guard let t = try? S3ResumeToken.decode(token) else { return }
        try? await abort(object: t.object, uploadId: t.uploadId)
        await deleteTails(t.session)
    }

    public func removeLeftovers(keeping: [String]) async throws -> Int {
        let kept = Self.uploadIds(keeping)
        let open = try await incompleteUploads().filter { !kept.contains($0.uploadId) }
        for (object, uploadId) in open { try await abort(object: object, uploadId: uploadId) }
        return open.count
    }

    /// The upload ids of resumable blob tokens (what the orphan sweeps spare).
    static func uploadIds(_ tokens: [String]) -> Set<String> {
        Set(tokens.compactMap { try? S3ResumeToken.decode($0).uploadId })
    }

    /// Every tail object a session's checkpoints left.
    func deleteTails(_ session: String) async {
        guard let keys = try? await keys(prefix: S3ResumeToken.tailPrefix(session)) else { return }
        for key in keys { try? await delete(key: key) }
    }
}
