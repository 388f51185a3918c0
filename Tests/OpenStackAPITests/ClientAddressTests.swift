@testable import FrontEndSupport
import NIOCore
import Testing

/// The client address the login throttle counts under: IPv4 as is, IPv6 by its /64, IPv4-mapped IPv6
/// as the IPv4 (a dual-stack listener sees IPv4 clients that way).
@Suite struct ClientAddressTests {
    @Test func addressesAsTheThrottleCountsThem() throws {
        #expect(ClientAddress.key(try SocketAddress(ipAddress: "192.0.2.7", port: 1)) == "192.0.2.7")
        #expect(ClientAddress.key(try SocketAddress(ipAddress: "2001:db8:a:b:1:2:3:4", port: 1)) == "2001:db8:a:b::/64")
        // Two hosts of one /64 are one client; another /64 is another.
        #expect(ClientAddress.key(try SocketAddress(ipAddress: "2001:db8:a:b:ffff::9", port: 1)) == "2001:db8:a:b::/64")
        #expect(ClientAddress.key(try SocketAddress(ipAddress: "2001:db8:a:c::1", port: 1)) == "2001:db8:a:c::/64")
        #expect(ClientAddress.key(try SocketAddress(ipAddress: "::ffff:198.51.100.9", port: 1)) == "198.51.100.9")
        #expect(ClientAddress.key(try SocketAddress(ipAddress: "::1", port: 1)) == "0:0:0:0::/64")
    }
}
