// Name resolution for the URL guard. The guard resolves once, checks every address, and hands the
// addresses to the fetcher so the connection is pinned to what was checked (no DNS rebinding).

import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Resolves a host name to addresses. The guard calls it only for names, never for IP literals.
public protocol HostResolver: Sendable {
    /// Every address of `host` (IPv4 and IPv6); an empty result means the name does not resolve.
    func resolve(host: String, port: Int) async throws -> [IPAddress]
}

/// `getaddrinfo` failed.
public struct HostResolutionError: Error, Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var code: Int32
    public var message: String
    public var description: String { message }
}

/// The system resolver (`getaddrinfo`, so /etc/hosts and nsswitch apply). The call blocks, so it
/// runs on a Dispatch queue, off Swift's cooperative thread pool.
public struct SystemResolver: HostResolver {
    private static let queue = DispatchQueue(label: "imaged.outbound.resolver", attributes: .concurrent)

    public init() {}

    public func resolve(host: String, port: Int) async throws -> [IPAddress] {
        try Task.checkCancellation()
        return try await withCheckedThrowingContinuation { continuation in
            SystemResolver.queue.async {
                continuation.resume(with: Result { try SystemResolver.resolveBlocking(host: host, port: port) })
            }
        }
    }

    /// Blocking `getaddrinfo` for TCP, both address families, no AI_ADDRCONFIG (every address the
    /// name has is returned, so every one of them is checked).
    public static func resolveBlocking(host: String, port: Int) throws -> [IPAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Darwin)
        hints.ai_socktype = SOCK_STREAM
        #else
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #endif
        hints.ai_flags = AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0 else {
            let text = gai_strerror(rc).map { String(cString: $0) } ?? "error \(rc)"
            throw HostResolutionError(host: host, code: rc, message: text)
        }
        defer { freeaddrinfo(list) }
        var result: [IPAddress] = []
        var node = list
        while let info = node {
            if let sa = info.pointee.ai_addr {
                switch info.pointee.ai_family {
                case AF_INET:
                    let raw = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr }
                    let address = IPAddress.v4(UInt32(bigEndian: raw))
                    if !result.contains(address) { result.append(address) }
                case AF_INET6:
                    var raw = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                    if let address = withUnsafeBytes(of: &raw, { IPAddress(ipv6Bytes: $0) }),
                       !result.contains(address) {
                        result.append(address)
                    }
                default:
                    break
                }
            }
            node = info.pointee.ai_next
        }
        return result
    }
}
