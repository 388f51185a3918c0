import Foundation
import Hummingbird
import NIOCore

/// The caller's address for the login throttle: the TCP peer of the connection (the context's
/// `remoteAddress`). Headers such as `X-Forwarded-For` are not honoured: any client can send them.
public enum ClientAddress {
    /// nil when the context cannot tell (the throttle then counts such callers together).
    public static func of(_ context: some RequestContext) -> String? {
        (context as? any RemoteAddressRequestContext)?.remoteAddress.flatMap(key)
    }

    /// IPv4 as text, an IPv4-mapped IPv6 address as its IPv4, other IPv6 as its /64: one host
    /// usually holds a whole /64, so counting single IPv6 addresses would count nothing.
    static func key(_ address: SocketAddress) -> String? {
        switch address {
        case .v4: return address.ipAddress
        case .v6(let v6):
            let b = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
            guard b.count == 16 else { return address.ipAddress }
            if b[0..<10].allSatisfy({ $0 == 0 }), b[10] == 0xff, b[11] == 0xff {
                return b[12...].map { String($0) }.joined(separator: ".")
            }
            let groups = stride(from: 0, to: 8, by: 2).map { String(UInt16(b[$0]) << 8 | UInt16(b[$0 + 1]), radix: 16) }
            return groups.joined(separator: ":") + "::/64"
        case .unixDomainSocket: return "unix"
        }
    }
}
