import ImageCore
import NIOCore

/// Copies an image's committed blob from one store to another, digesting it on the way. The copy is
/// committed only when its size, MD5 and multihash are the catalog's, so a store never receives
/// bytes that differ from what the image records (copy-image, multi-store imports, `imaged migrate`).
/// Returns the bytes copied.
func copyImageBlob(_ image: Image, from source: any BlobStore, to target: any BlobStore,
                   progress: (@Sendable (Int) -> Void)? = nil) async throws -> Int64 {
    let key = BlobKey.image(image.id)
    guard try await source.size(key: key) != nil else {
        throw ImageError(.internal, "image \(image.id) is \(image.status.rawValue) but store \(source.id) has no blob \(key)")
    }
    let algorithm = HashAlgorithm(rawValue: image.osHashAlgo ?? "sha512") ?? .sha512
    let writer = try await target.makeWriter(key: key)
    let ingest: ImageIngest
    do {
        ingest = try ImageIngest(writer: writer, algorithm: algorithm,
                                 limits: IngestLimits(sizeCap: Int64.max, expectedSize: image.size, maxVirtualSize: Int64.max))
    } catch {
        await writer.cancel()
        throw error
    }
    do {
        try await source.read(key: key, range: nil, chunkSize: 1 << 20) { buffer in
            try await ingest.append(buffer)
            progress?(buffer.readableBytes)
        }
        let result = try await ingest.finish()
        guard image.checksum == nil || result.md5 == image.checksum else {
            throw ImageError(.internal, "image \(image.id): the MD5 of the blob in \(source.id) is \(result.md5), the catalog says \(image.checksum ?? "-")")
        }
        guard image.osHashValue == nil || result.hashValue == image.osHashValue else {
            throw ImageError(.internal, "image \(image.id): the \(algorithm.rawValue) of the blob in \(source.id) differs from the catalog's")
        }
        try await writer.commit()
        return result.size
    } catch {
        await uncancelled {
            await ingest.abort()
            await writer.cancel()
        }
        throw error
    }
}
