@testable import Outbound
import Testing

// MARK: - Test doubles (private, so they cannot collide with other files in this test module)

/// Name -> addresses, like a tiny DNS zone. A trailing dot is ignored (FQDN), as real DNS does.
/// Names it does not know fail with an error; "nodata.example" resolves to nothing.
private struct URLGuardZoneResolver: HostResolver {
    struct Failure: Error, CustomStringConvertible { var description: String { "SERVFAIL" } }
    var zone: [String: [IPAddress]]

    func resolve(host: String, port: Int) async throws -> [IPAddress] {
        let name = host.hasSuffix(".") ? String(host.dropLast()) : host
        guard let addresses = zone[name] else { throw Failure() }
        return addresses
    }
}

/// For IP-literal hosts: proves no DNS lookup happens.
private struct URLGuardNoDNSResolver: HostResolver {
    struct Called: Error {}
    func resolve(host: String, port: Int) async throws -> [IPAddress] {
        Issue.record("resolver called for '\(host)'")
        throw Called()
    }
}

private func guardIP(_ text: String) -> IPAddress {
    guard let address = IPAddress(text) else { fatalError("bad test address \(text)") }
    return address
}

private func guardCIDR(_ text: String) -> CIDR {
    guard let range = CIDR(text) else { fatalError("bad test CIDR \(text)") }
    return range
}

private let guardPublicV4 = guardIP("93.184.216.34")
private let guardPublicV6 = guardIP("2606:2800:220:1:248:1893:25c8:1946")

private let guardZone = URLGuardZoneResolver(zone: [
    "images.example.com": [guardPublicV4, guardPublicV6],
    "cdn.example.com": [guardIP("151.101.1.1")],
    "allowed.example": [guardIP("198.41.0.4")],
    "localhost": [guardIP("127.0.0.1"), guardIP("::1")],
    "metadata.google.internal": [guardIP("169.254.169.254")],
    "loopback-alias.example": [guardIP("127.0.0.1")],
    "rebind.example": [guardPublicV4, guardIP("10.0.0.1")],
    "v6internal.example": [guardIP("fd00:ec2::254")],
    "mapped.example": [guardIP("::ffff:169.254.169.254")],
    "internal.corp.example": [guardIP("10.20.30.40")],
    "127.0.0.1.nip.io": [guardIP("127.0.0.1")],
    "nodata.example": [],
    "xn--bcher-kva.example": [guardPublicV4],
])

private func guardWith(_ configure: (inout URLGuardPolicy) -> Void = { _ in },
                       resolver: any HostResolver = guardZone) -> URLGuard {
    var policy = URLGuardPolicy()
    configure(&policy)
    return URLGuard(policy: policy, resolver: resolver)
}

/// The refusal `check` throws, or nil (recording an issue) if it passed.
private func guardRefusal(_ url: String, _ guard_: URLGuard = guardWith(),
                     sourceLocation: SourceLocation = #_sourceLocation) async -> URLRefusal? {
    do {
        let vetted = try await guard_.check(url)
        Issue.record("expected a refusal for \(url), got \(vetted.url)", sourceLocation: sourceLocation)
        return nil
    } catch let refusal as URLRefusal {
        return refusal
    } catch {
        Issue.record("unexpected error \(error) for \(url)", sourceLocation: sourceLocation)
        return nil
    }
}

// MARK: - Defaults and normalisation

@Suite struct URLGuardDefaultsTests {
    @Test func policyDefaults() {
        let policy = URLGuardPolicy()
        #expect(policy.allowedSchemes == ["http", "https"])
        #expect(policy.allowedPorts == [80, 443])
        #expect(policy.allowedHosts.isEmpty)
        #expect(policy.disallowedHosts.isEmpty)
        #expect(policy.allowCIDRs.isEmpty)
    }

    @Test func publicNamePasses() async throws {
        let vetted = try await guardWith().check("https://images.example.com/images/debian.qcow2?sig=abc")
        #expect(vetted == VettedURL(url: "https://images.example.com/images/debian.qcow2?sig=abc", scheme: "https",
                                    host: "images.example.com", port: 443,
                                    pathAndQuery: "/images/debian.qcow2?sig=abc", addresses: [guardPublicV4, guardPublicV6]))
        #expect(vetted.hostHeader == "images.example.com")
        #expect(vetted.serverName == "images.example.com")
        #expect(!vetted.isIPLiteral)
    }

    @Test func defaultPortsBySchemeAndNormalisation() async throws {
        let g = guardWith()
        let http = try await g.check("HTTP://Images.Example.COM")
        #expect(http.url == "http://images.example.com/")
        #expect(http.scheme == "http" && http.port == 80 && http.pathAndQuery == "/")
        let https = try await g.check("hTTpS://images.example.com:443/A/B#fragment")
        #expect(https.url == "https://images.example.com/A/B")
        #expect(https.port == 443)
        let crossed = try await g.check("http://images.example.com:443/x")
        #expect(crossed.url == "http://images.example.com:443/x")
        #expect(crossed.hostHeader == "images.example.com:443")
    }

    @Test func publicIPLiteralsPassWithoutDNS() async throws {
        let g = guardWith(resolver: URLGuardNoDNSResolver())
        for (url, address) in [("http://8.8.8.8/x", "8.8.8.8"), ("https://1.1.1.1", "1.1.1.1"),
                                ("http://223.255.255.255/", "223.255.255.255"),
                                ("http://[2606:4700:4700::1111]/", "2606:4700:4700::1111"),
                                ("http://[2606:4700:4700:0:0:0:0:1111]:80/", "2606:4700:4700::1111"),
                                ("http://[::ffff:8.8.8.8]/", "::ffff:8.8.8.8"),
                                ("http://[2002:808:808::1]/", "2002:808:808::1"),
                                ("http://[64:ff9b::808:808]/", "64:ff9b::808:808")] {
            let vetted = try await g.check(url)
            #expect(vetted.addresses == [guardIP(address)], "\(url)")
            #expect(vetted.isIPLiteral)
            #expect(vetted.serverName == nil)
        }
        let v6 = try await g.check("http://[2606:4700:4700:0:0:0:0:1111]:80/")
        #expect(v6.url == "http://[2606:4700:4700::1111]/")
        #expect(v6.host == "2606:4700:4700::1111")
        #expect(v6.uriHost == "[2606:4700:4700::1111]")
        #expect(v6.hostHeader == "[2606:4700:4700::1111]")
        let v6port = try await guardWith({ $0.allowedPorts = [] }, resolver: URLGuardNoDNSResolver()).check("http://[::FFFF:8.8.8.8]:8080")
        #expect(v6port.url == "http://[::ffff:8.8.8.8]:8080/")
        #expect(v6port.host == "::ffff:8.8.8.8" && v6port.hostHeader == "[::ffff:8.8.8.8]:8080")
    }

    @Test(arguments: [
        ("http://h.example.com", "/"),
        ("http://h.example.com?q=1", "/?q=1"),
        ("http://h.example.com/a/./b/../c?x=1#frag", "/a/c?x=1"),
        ("http://h.example.com/a/b/..", "/a/"),
        ("http://h.example.com/../../etc", "/etc"),
        ("http://h.example.com/a//b/", "/a//b/"),
        ("http://h.example.com/.hidden/..x", "/.hidden/..x"),
        ("http://h.example.com/a?b=../c", "/a?b=../c"),
        ("http://h.example.com/%C3%BC%2F", "/%C3%BC%2F"),
        ("http://h.example.com/\u{FC}", "/%C3%BC"),
        ("http://h.example.com/%zz%4", "/%25zz%254"),
        ("http://h.example.com/<x>\"{|}^`", "/%3Cx%3E%22%7B%7C%7D%5E%60"),
        ("http://h.example.com/p?a[]=1&b=/?c", "/p?a%5B%5D=1&b=/?c"),
        ("http://h.example.com/p?q#f?g", "/p?q"),
        ("http://h.example.com/~u/!$&'()*+,;=:@", "/~u/!$&'()*+,;=:@"),
    ])
    func pathAndQueryNormalisation(url: String, expected: String) async throws {
        let g = guardWith(resolver: URLGuardZoneResolver(zone: ["h.example.com": [guardPublicV4]]))
        let vetted = try await g.check(url)
        #expect(vetted.pathAndQuery == expected)
        #expect(vetted.url == "http://h.example.com" + expected)
    }

    @Test func refusalMessageFormat() async {
        let r = await guardRefusal("http://127.0.0.1/x")
        #expect(r?.url == "http://127.0.0.1/x")
        #expect(r?.rule == .forbiddenAddress)
        #expect(r?.reason == "address 127.0.0.1 is loopback (127.0.0.0/8), refused for every user; an operator opens it with --import-allow-cidr 127.0.0.1/32")
        #expect(r?.description == "URI for web-download does not pass filtering: http://127.0.0.1/x (address 127.0.0.1 is loopback "
                + "(127.0.0.0/8), refused for every user; an operator opens it with --import-allow-cidr 127.0.0.1/32)")
        // Control characters never reach a log line raw.
        let nl = await guardRefusal("http://example.com/\n/x")
        #expect(nl?.description.contains("\\u{a}") == true)
        #expect(nl?.description.contains("\n") == false)
        let bidi = await guardRefusal("http://127.0.0.1/\u{202E}x")
        #expect(bidi?.description.contains("\\u{202e}") == true)
    }
}

// MARK: - Schemes, ports, syntax

@Suite struct URLGuardSyntaxTests {
    @Test(arguments: [
        ("file:///etc/passwd", "file"), ("FILE://localhost/etc/passwd", "file"), ("ftp://ftp.example.com/x", "ftp"),
        ("gopher://127.0.0.1:70/_GET", "gopher"), ("data:text/plain,hello", "data"), ("javascript:alert(1)", "javascript"),
        ("dict://127.0.0.1:11211/stat", "dict"), ("ldap://x", "ldap"), ("jar:http://x/!/", "jar"),
        ("https+unix://x/", "https+unix"),
    ])
    func nonHTTPSchemesAreRefused(url: String, scheme: String) async {
        let r = await guardRefusal(url)
        #expect(r?.rule == .scheme)
        #expect(r?.reason == "scheme '\(scheme)' is not allowed")
    }

    @Test func otherSchemesNeedAnExplicitPort() async throws {
        let g = guardWith({ $0.allowedSchemes = ["http", "https", "ftp"]; $0.allowedPorts = [] })
        #expect(await guardRefusal("ftp://images.example.com/x", g)?.rule == .port)
        let ok = try await g.check("ftp://images.example.com:21/x")
        #expect(ok.url == "ftp://images.example.com:21/x")
    }

    @Test(arguments: [
        "http:127.0.0.1/", "http:/127.0.0.1/", "//images.example.com/x", "/relative", "images.example.com/x",
        "1http://x/", "http//x", "",
    ])
    func notAbsoluteURLs(url: String) async {
        #expect(await guardRefusal(url)?.rule == .malformed)
    }

    @Test(arguments: [
        " http://images.example.com/", "http://images.example.com/ ", "http://images.example.com/a b",
        "http://images.example.com/\n", "http://images\t.example.com/", "http://images.example.com/\r\nX: y",
        "http://images.example.com/\u{0}", "http://images.example.com/\u{7F}", "\u{1}http://images.example.com/",
        "http://images.example.com/\u{A0}", "http://images.example.com/\u{85}", "http://images.example.com/\u{2028}",
        "http://images.example.com/\u{202E}gpj.exe", "http://images.example.com/\u{200B}", "http://images.example.com/\u{3000}",
        "http://\u{FEFF}images.example.com/",
    ])
    func whitespaceAndControlCharactersAreRefused(url: String) async {
        let r = await guardRefusal(url)
        #expect(r?.rule == .malformed)
        #expect(r?.reason == "the URL contains whitespace or control characters")
    }

    @Test(arguments: [
        "http://allowed.example\\@127.0.0.1/", "http:\\\\127.0.0.1\\", "http:/\\127.0.0.1/",
        "http://images.example.com\\.evil.example/", "http://images.example.com/a\\b",
    ])
    func backslashesAreRefused(url: String) async {
        let r = await guardRefusal(url)
        #expect(r?.rule == .malformed)
        #expect(r?.reason == "the URL contains a backslash")
    }

    @Test(arguments: [
        "http://allowed.example@127.0.0.1/", "http://user:pass@images.example.com/", "http://@images.example.com/",
        "http://allowed.example:80@169.254.169.254/", "http://a@b@127.0.0.1/", "https://user@[::1]/",
    ])
    func userinfoIsRefused(url: String) async {
        let r = await guardRefusal(url)
        #expect(r?.rule == .credentials)
        #expect(r?.reason.hasPrefix("credentials in the URL are not allowed") == true)
    }

    @Test func atSignsOutsideTheAuthorityAreJustPathOrFragment() async throws {
        // The authority ends at the first '/', '?' or '#', so these are about 127.0.0.1 / allowed.example.
        let r = await guardRefusal("http://127.0.0.1#@allowed.example/")
        #expect(r?.rule == .forbiddenAddress)
        let r2 = await guardRefusal("http://127.0.0.1?@allowed.example/")
        #expect(r2?.rule == .forbiddenAddress)
        let ok = try await guardWith().check("http://allowed.example#@127.0.0.1")
        #expect(ok.host == "allowed.example" && ok.url == "http://allowed.example/")
        let ok2 = try await guardWith().check("http://allowed.example/@127.0.0.1")
        #expect(ok2.host == "allowed.example" && ok2.pathAndQuery == "/@127.0.0.1")
    }

    @Test(arguments: [
        "http:///x", "http://", "http://:80/", "http://?q", "http://#f", "http://./", "http://../",
    ])
    func emptyHostsAreRefused(url: String) async {
        let r = await guardRefusal(url)
        #expect(r?.rule == .host)
        #expect(r?.reason.contains("empty") == true)
    }

    @Test(arguments: [
        "http://%31%32%37.0.0.1/", "http://127.0.0.%31/", "http://images%2eexample.com/", "http://loc%61lhost/",
    ])
    func percentEncodedHostsAreRefused(url: String) async {
        let r = await guardRefusal(url)
        #expect(r?.rule == .host)
        #expect(r?.reason == "percent-encoded characters are not allowed in the host")
    }

    @Test(arguments: [
        "http://b\u{FC}cher.example/", "http://\u{FF45}xample.com/", "http://\u{FF11}\u{FF12}\u{FF17}.0.0.1/",
        "http://127\u{3002}0\u{3002}0\u{3002}1/", "http://images.example.com\u{2024}evil/",
    ])
    func nonASCIIHostsAreRefused(url: String) async {
        let r = await guardRefusal(url)
        #expect(r?.rule == .host)
        #expect(r?.reason.hasPrefix("non-ASCII host") == true)
    }

    @Test func punycodeHostsPass() async throws {
        let vetted = try await guardWith().check("http://XN--BCHER-KVA.example/")
        #expect(vetted.host == "xn--bcher-kva.example")
    }

    @Test(arguments: [
        "http://a!b.example/", "http://a,b.example/", "http://a;b.example/", "http://a*b/", "http://a..b/",
        "http://.a.example/", "http://a..", "http://[::1/", "http://[::1]x/", "http://[::1]]/", "http://a[b]/",
        "http://" + String(repeating: "a", count: 64) + ".example/",
        "http://" + String(repeating: "abcdefgh.", count: 29) + "com/",
    ])
    func invalidHostsAreRefused(url: String) async {
        #expect(await guardRefusal(url)?.rule == .host)
    }

    @Test(arguments: [
        ("http://images.example.com:8080/", "port 8080 is not allowed"),
        ("http://images.example.com:22/", "port 22 is not allowed"),
        ("http://images.example.com:0/", "port 0 is out of range 1-65535"),
        ("http://images.example.com:65536/", "port 65536 is out of range 1-65535"),
        ("http://images.example.com:99999999999999999999999/", "port 99999999999999999999999 is out of range 1-65535"),
        ("http://images.example.com:abc/", "port 'abc' is not a number"),
        ("http://images.example.com:-1/", "port '-1' is not a number"),
        ("http://images.example.com:+80/", "port '+80' is not a number"),
        ("http://images.example.com:0x50/", "port '0x50' is not a number"),
        ("http://images.example.com:80:80/", "port '80:80' is not a number"),
        ("http://images.example.com:/", "empty port after ':'"),
        ("http://[2606:4700:4700::1111]:8080/", "port 8080 is not allowed (allowed ports: 80, 443); admins may import from any port (--import-private admin), --import-allow-port 8080 opens it to every user"),
    ])
    func portRules(url: String, reason: String) async {
        let r = await guardRefusal(url)
        #expect(r?.rule == .port)
        #expect(r?.reason.hasPrefix(reason) == true, "\(r?.reason ?? "")")
    }

    @Test func portsWithAnEmptyAllowListAndLeadingZeros() async throws {
        let any = guardWith({ $0.allowedPorts = [] })
        let vetted = try await any.check("http://images.example.com:8080/x")
        #expect(vetted.port == 8080 && vetted.url == "http://images.example.com:8080/x")
        #expect(vetted.hostHeader == "images.example.com:8080")
        #expect(await guardRefusal("http://images.example.com:65536/", any)?.rule == .port)
        let padded = try await guardWith().check("http://images.example.com:00080/")
        #expect(padded.port == 80 && padded.url == "http://images.example.com/")
        // Only an explicit port is checked against the list; the scheme default always passes.
        let only443 = guardWith({ $0.allowedPorts = [443] })
        #expect(try await only443.check("http://images.example.com/").port == 80)
        #expect(await guardRefusal("http://images.example.com:80/", only443)?.reason.hasPrefix("port 80 is not allowed (allowed ports: 443); ") == true)
    }

    @Test func overlongURLsAreRefused() async {
        let r = await guardRefusal("http://images.example.com/" + String(repeating: "a", count: 9000))
        #expect(r?.rule == .malformed)
    }
}

// MARK: - Addresses

@Suite struct URLGuardAddressTests {
    @Test(arguments: [
        "2130706433", "0x7f000001", "0X7F000001", "0177.0.0.1", "127.1", "127.0.1", "0x7f.1", "0x7f.0.0.1",
        "017700000001", "127.000.0.1", "127.0.0.01", "0.0.0.0.0", "1.2.3.4.5", "256.0.0.1", "127.0.0.1.",
        "0", "0x", "00", "3232235521", "0xa9fe.0xa9fe", "0251.0376.0251.0376", "169.254.43518", "images.0x1",
        "example.123", "a-b.1",
    ])
    func nonCanonicalIPv4IsRefused(host: String) async {
        let r = await guardRefusal("http://\(host)/latest/meta-data/", guardWith(resolver: URLGuardNoDNSResolver()))
        #expect(r?.rule == .nonCanonicalAddress)
        #expect(r?.reason == "host '\(host.lowercased())' is a non-canonical IP address")
    }

    @Test func namesThatMerelyContainDigitsOrHexLettersAreNames() async throws {
        let g = guardWith(resolver: URLGuardZoneResolver(zone: [
            "cafe.face": [guardPublicV4], "1e100.net": [guardPublicV4], "123.example.com": [guardPublicV4], "0x7f.example": [guardPublicV4],
        ]))
        for host in ["cafe.face", "1e100.net", "123.example.com", "0x7f.example"] {
            #expect(try await g.check("http://\(host)/").host == host)
        }
    }

    @Test(arguments: [
        ("0.0.0.0", "unspecified/this-network"), ("0.1.2.3", "unspecified/this-network"),
        ("10.0.0.1", "private"), ("10.255.255.255", "private"),
        ("100.64.0.1", "shared address space (CGNAT)"), ("100.100.100.200", "cloud metadata (Alibaba)"),
        ("127.0.0.1", "loopback"), ("127.255.255.254", "loopback"),
        ("169.254.169.254", "link-local/metadata"), ("169.254.0.1", "link-local/metadata"),
        ("172.16.0.1", "private"), ("172.31.255.255", "private"),
        ("192.0.0.8", "IETF protocol assignments (reserved)"), ("192.0.2.1", "documentation (reserved)"),
        ("192.168.1.1", "private"), ("198.18.0.1", "benchmarking (reserved)"), ("198.19.255.255", "benchmarking (reserved)"),
        ("198.51.100.7", "documentation (reserved)"), ("203.0.113.9", "documentation (reserved)"),
        ("224.0.0.1", "multicast"), ("239.255.255.250", "multicast"), ("240.0.0.1", "reserved"),
        ("255.255.255.255", "broadcast"), ("168.63.129.16", "cloud metadata (Azure wireserver)"),
    ])
    func forbiddenIPv4Literals(address: String, label: String) async {
        let r = await guardRefusal("http://\(address)/x", guardWith(resolver: URLGuardNoDNSResolver()))
        #expect(r?.rule == .forbiddenAddress)
        #expect(r?.reason.hasPrefix("address \(address) is \(label) (") == true, "\(r?.reason ?? "")")
        // Private ranges are the admins' (--import-private admin); everything else is closed to everyone.
        let privateRange = ["private", "shared address space (CGNAT)"].contains(label)
        #expect(r?.reason.contains(privateRange ? "only admins may import from private addresses" : "refused for every user") == true,
                "\(r?.reason ?? "")")
        #expect(r?.reason.hasSuffix("--import-allow-cidr \(address)/32" + (privateRange ? " opens this address" : "")) == true)
    }

    @Test(arguments: ["9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0", "126.255.255.255", "128.0.0.0",
                      "169.253.255.255", "169.255.0.0", "172.15.255.255", "172.32.0.0", "192.0.1.0", "192.0.3.0",
                      "192.167.255.255", "192.169.0.0", "198.17.255.255", "198.20.0.0", "198.51.99.255",
                      "203.0.112.255", "203.0.114.0", "223.255.255.255", "168.63.129.17"])
    func addressesJustOutsideTheRangesPass(address: String) async throws {
        let vetted = try await guardWith(resolver: URLGuardNoDNSResolver()).check("http://\(address)/")
        #expect(vetted.addresses == [guardIP(address)])
    }

    @Test(arguments: [
        ("[::1]", "::1", "loopback"), ("[::]", "::", "unspecified"), ("[0:0:0:0:0:0:0:1]", "::1", "loopback"),
        ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1", "loopback"), ("[::ffff:7f00:1]", "::ffff:127.0.0.1", "loopback"),
        ("[::FFFF:7F00:0001]", "::ffff:127.0.0.1", "loopback"),
        ("[0:0:0:0:0:ffff:a9fe:a9fe]", "::ffff:169.254.169.254", "link-local/metadata"),
        ("[::ffff:10.0.0.1]", "::ffff:10.0.0.1", "private"),
        ("[::127.0.0.1]", "::7f00:1", "loopback"), ("[::a9fe:a9fe]", "::a9fe:a9fe", "link-local/metadata"),
        ("[64:ff9b::a9fe:a9fe]", "64:ff9b::a9fe:a9fe", "link-local/metadata"),
        ("[64:ff9b::127.0.0.1]", "64:ff9b::7f00:1", "loopback"),
        ("[2002:7f00:1::]", "2002:7f00:1::", "loopback"), ("[2002:a9fe:a9fe::1]", "2002:a9fe:a9fe::1", "link-local/metadata"),
        ("[2002:c0a8:101::]", "2002:c0a8:101::", "private"),
        ("[fe80::1]", "fe80::1", "link-local"), ("[febf::1]", "febf::1", "link-local"),
        ("[fc00::1]", "fc00::1", "unique-local (private)"), ("[fd00:ec2::254]", "fd00:ec2::254", "cloud metadata (AWS IPv6)"),
        ("[fec0::1]", "fec0::1", "site-local (deprecated)"), ("[ff02::1]", "ff02::1", "multicast"),
        ("[2001:db8::1]", "2001:db8::1", "documentation (reserved)"), ("[100::1]", "100::1", "discard-only (reserved)"),
        ("[2001::1]", "2001::1", "Teredo tunnel (reserved)"), ("[64:ff9b:1::1]", "64:ff9b:1::1", "local-use NAT64 (reserved)"),
        ("[4000::1]", "4000::1", "reserved"), ("[::ffff:0:7f00:1]", "::ffff:0:7f00:1", "reserved"),
    ])
    func forbiddenIPv6Literals(host: String, canonical: String, label: String) async {
        let r = await guardRefusal("http://\(host)/x", guardWith(resolver: URLGuardNoDNSResolver()))
        #expect(r?.rule == .forbiddenAddress)
        #expect(r?.reason.hasPrefix("address \(canonical) ") == true, "\(r?.reason ?? "")")
        #expect(r?.reason.contains(" is \(label)") == true, "\(r?.reason ?? "")")
    }

    @Test func embeddedIPv4IsNamedInTheReason() async {
        let r = await guardRefusal("http://[::ffff:7f00:1]/", guardWith(resolver: URLGuardNoDNSResolver()))
        #expect(r?.reason == "address ::ffff:127.0.0.1 embeds IPv4 127.0.0.1 (IPv4-mapped); address 127.0.0.1 is loopback (127.0.0.0/8), refused for every user; an operator opens it with --import-allow-cidr ::ffff:127.0.0.1/128")
        let nat64 = await guardRefusal("http://[64:ff9b::a9fe:a9fe]/", guardWith(resolver: URLGuardNoDNSResolver()))
        #expect(nat64?.reason.contains("embeds IPv4 169.254.169.254 (NAT64)") == true)
        let sixToFour = await guardRefusal("http://[2002:7f00:1::]/", guardWith(resolver: URLGuardNoDNSResolver()))
        #expect(sixToFour?.reason.contains("embeds IPv4 127.0.0.1 (6to4)") == true)
    }

    @Test(arguments: [
        "[::1%25eth0]", "[fe80::1%25eth0]", "[fe80::1%eth0]", "[fe80::1%2525]", "[::ffff:127.0.0.1%25lo]",
    ])
    func zoneIdsAreRefused(host: String) async {
        let r = await guardRefusal("http://\(host)/", guardWith(resolver: URLGuardNoDNSResolver()))
        #expect(r?.rule == .host)
        #expect(r?.reason == "IPv6 zone identifiers are not allowed in the host")
    }

    @Test(arguments: ["[127.0.0.1]", "[::1::]", "[1:2:3:4:5:6:7:8:9]", "[::ffff:127.1]", "[::ffff:0177.0.0.1]",
                      "[v1.fe80::1]", "[]", "[localhost]", "[0x7f000001]"])
    func invalidIPv6LiteralsAreRefused(host: String) async {
        #expect(await guardRefusal("http://\(host)/", guardWith(resolver: URLGuardNoDNSResolver()))?.rule == .host)
    }
}

// MARK: - Names and DNS

@Suite struct URLGuardResolutionTests {
    @Test(arguments: [
        ("http://localhost/", "127.0.0.1"), ("http://LOCALHOST:80/", "127.0.0.1"), ("http://localhost./", "127.0.0.1"),
        ("http://metadata.google.internal/computeMetadata/v1/", "169.254.169.254"),
        ("http://loopback-alias.example/", "127.0.0.1"), ("http://loopback-alias.example./", "127.0.0.1"),
        ("http://rebind.example/", "10.0.0.1"), ("http://v6internal.example/", "fd00:ec2::254"),
        ("http://mapped.example/", "::ffff:169.254.169.254"), ("http://127.0.0.1.nip.io/", "127.0.0.1"),
    ])
    func namesResolvingToForbiddenAddressesAreRefused(url: String, address: String) async {
        // A non-admin learns the rule, never what the name resolves to.
        let r = await guardRefusal(url)
        #expect(r?.rule == .forbiddenAddress)
        #expect(r?.reason.contains("resolves to a forbidden address: it is ") == true, "\(r?.reason ?? "")")
        #expect(r?.reason.contains("address \(address)") == false, "\(r?.reason ?? "")")
        // An admin (the operator) sees the address.
        let asAdmin: URLRefusal?
        do { _ = try await guardWith({ $0.privateImports = .none }).check(url, asAdmin: true); asAdmin = nil }
        catch { asAdmin = error as? URLRefusal }
        #expect(asAdmin?.reason.contains("resolves to a forbidden address: address \(address) ") == true, "\(asAdmin?.reason ?? "")")
    }

    @Test func unresolvableNamesAreRefused() async {
        let none = await guardRefusal("http://nodata.example/")
        #expect(none?.rule == .resolution)
        #expect(none?.reason == "host 'nodata.example' does not resolve to any address")
        let failed = await guardRefusal("http://unknown.example/")
        #expect(failed?.rule == .resolution)
        #expect(failed?.reason == "host 'unknown.example' could not be resolved: SERVFAIL")
    }

    @Test func trailingDotNamesResolveAndCompareWithoutTheDot() async throws {
        let vetted = try await guardWith().check("http://Images.Example.com./x")
        #expect(vetted.host == "images.example.com.")
        #expect(vetted.url == "http://images.example.com./x")
        #expect(vetted.serverName == "images.example.com")
        #expect(vetted.addresses == [guardPublicV4, guardPublicV6])
        let blocked = guardWith({ $0.disallowedHosts = ["images.example.com"] })
        #expect(await guardRefusal("http://images.example.com./", blocked)?.rule == .hostList)
    }

    @Test func duplicateResolvedAddressesAreReportedOnce() async throws {
        let g = guardWith(resolver: URLGuardZoneResolver(zone: ["dup.example": [guardPublicV4, guardPublicV4, guardPublicV6, guardPublicV4]]))
        #expect(try await g.check("http://dup.example/").addresses == [guardPublicV4, guardPublicV6])
    }

    @Test func hostLists() async throws {
        let denied = guardWith({ $0.disallowedHosts = ["Evil.Example.", "[0:0::1]", "10.20.30.40"] })
        let r = await guardRefusal("http://EVIL.example/x", denied)
        #expect(r?.rule == .hostList)
        #expect(r?.reason == "host 'evil.example' is disallowed")
        #expect(await guardRefusal("http://[::1]/", denied)?.reason == "host '::1' is disallowed")
        #expect(await guardRefusal("http://10.20.30.40/", denied)?.reason == "host '10.20.30.40' is disallowed")
        #expect(try await denied.check("http://images.example.com/").host == "images.example.com")

        let allowedOnly = guardWith({ $0.allowedHosts = ["images.example.com", "CDN.example.com."] })
        #expect(try await allowedOnly.check("https://images.example.com/a").host == "images.example.com")
        #expect(try await allowedOnly.check("https://cdn.example.com/a").host == "cdn.example.com")
        let other = await guardRefusal("https://allowed.example/", allowedOnly)
        #expect(other?.rule == .hostList)
        #expect(other?.reason == "host 'allowed.example' is not in the allowed hosts list")
        // Being listed does not open a forbidden address.
        let listedButInternal = guardWith({ $0.allowedHosts = ["internal.corp.example"] })
        #expect(await guardRefusal("http://internal.corp.example/", listedButInternal)?.rule == .forbiddenAddress)
    }

    @Test func systemResolverRefusesLocalhostAsLoopback() async throws {
        let g = URLGuard(policy: URLGuardPolicy())
        let r = await guardRefusal("http://localhost/x", g)
        #expect(r?.rule == .forbiddenAddress)
        #expect(r?.reason.contains("loopback") == true, "\(r?.reason ?? "")")
        let addresses = try await SystemResolver().resolve(host: "localhost", port: 80)
        #expect(!addresses.isEmpty)
        #expect(addresses.allSatisfy { g.refusalReason(for: $0)?.contains("loopback") == true })
    }
}

// MARK: - Operator allow-CIDRs

@Suite struct URLGuardAllowCIDRTests {
    @Test func allowCIDRWithAnyPortLetsALocalServerThrough() async throws {
        let g = URLGuard(policy: URLGuardPolicy(allowedPorts: [], allowCIDRs: [guardCIDR("127.0.0.0/8")]))
        let vetted = try await g.check("http://127.0.0.1:8080/x")
        #expect(vetted.addresses == [guardIP("127.0.0.1")])
        #expect(vetted.url == "http://127.0.0.1:8080/x")
        #expect(vetted.host == "127.0.0.1" && vetted.port == 8080 && vetted.pathAndQuery == "/x")
        // The default SystemResolver's localhost also passes now (every address of it must be allowed,
        // so open ::1 as well in case /etc/hosts maps it).
        let both = URLGuard(policy: URLGuardPolicy(allowedPorts: [], allowCIDRs: [guardCIDR("127.0.0.0/8"), guardCIDR("::1")]))
        let local = try await both.check("http://localhost:8080/x")
        #expect(!local.addresses.isEmpty)
    }

    @Test func allowCIDROpensOnlyItsRange() async throws {
        let g = guardWith({ $0.allowCIDRs = [guardCIDR("127.0.0.1/32")] }, resolver: URLGuardNoDNSResolver())
        #expect(try await g.check("http://127.0.0.1/").addresses == [guardIP("127.0.0.1")])
        #expect(await guardRefusal("http://127.0.0.2/", g)?.rule == .forbiddenAddress)
        #expect(await guardRefusal("http://[::1]/", g)?.rule == .forbiddenAddress)
        // The IPv4 range also opens the IPv4-mapped spelling of the same address.
        #expect(try await g.check("http://[::ffff:127.0.0.1]/").addresses == [guardIP("::ffff:127.0.0.1")])
        // Non-canonical spellings stay refused: the syntax rule is not an address rule.
        #expect(await guardRefusal("http://2130706433/", g)?.rule == .nonCanonicalAddress)
        #expect(await guardRefusal("http://127.1/", g)?.rule == .nonCanonicalAddress)
    }

    @Test func allowCIDRDoesNotBypassThePortRule() async {
        let g = guardWith({ $0.allowCIDRs = [guardCIDR("127.0.0.1/32")] }, resolver: URLGuardNoDNSResolver())
        let r = await guardRefusal("http://127.0.0.1:8080/", g)
        #expect(r?.rule == .port)
        #expect(r?.reason.hasPrefix("port 8080 is not allowed (allowed ports: 80, 443)") == true)
    }

    @Test func allowCIDRAppliesToResolvedAddresses() async throws {
        let g = guardWith({ $0.allowCIDRs = [guardCIDR("10.0.0.0/8")] })
        #expect(try await g.check("http://internal.corp.example/").addresses == [guardIP("10.20.30.40")])
        #expect(try await g.check("http://rebind.example/").addresses == [guardPublicV4, guardIP("10.0.0.1")])
        #expect(await guardRefusal("http://localhost/", g)?.rule == .forbiddenAddress)
        let v6 = guardWith({ $0.allowCIDRs = [guardCIDR("fd00:ec2::/32"), guardCIDR("::1")] })
        #expect(try await v6.check("http://v6internal.example/").addresses == [guardIP("fd00:ec2::254")])
        #expect(try await v6.check("http://[::1]/").addresses == [guardIP("::1")])
    }

    @Test func refusalReasonForAddresses() {
        let g = guardWith({ $0.allowCIDRs = [guardCIDR("192.168.0.0/16")] })
        #expect(g.refusalReason(for: guardIP("192.168.1.1")) == nil)
        #expect(g.refusalReason(for: guardIP("8.8.8.8")) == nil)
        #expect(g.refusalReason(for: guardIP("2606:4700:4700::1111")) == nil)
        #expect(g.refusalReason(for: guardIP("169.254.169.254")) == "address 169.254.169.254 is link-local/metadata (169.254.0.0/16), refused for every user; an operator opens it with --import-allow-cidr 169.254.169.254/32")
    }
}

// MARK: - Redirects

@Suite struct URLGuardRedirectTests {
    let g = guardWith()

    func base() async throws -> VettedURL {
        try await g.check("https://images.example.com/dir/a.img?x=1")
    }

    @Test(arguments: [
        ("/other", "https://images.example.com/other"),
        ("/other?y=2#frag", "https://images.example.com/other?y=2"),
        ("b.img", "https://images.example.com/dir/b.img"),
        ("./b.img", "https://images.example.com/dir/b.img"),
        ("../up/c.img", "https://images.example.com/up/c.img"),
        ("../../../../etc", "https://images.example.com/etc"),
        ("?y=2", "https://images.example.com/dir/a.img?y=2"),
        ("", "https://images.example.com/dir/a.img?x=1"),
        ("#frag", "https://images.example.com/dir/a.img?x=1"),
        ("//cdn.example.com/z", "https://cdn.example.com/z"),
        ("https://cdn.example.com/z?q", "https://cdn.example.com/z?q"),
        ("HTTP://CDN.example.com", "http://cdn.example.com/"),
    ])
    func relativeAndAbsoluteLocations(location: String, expected: String) async throws {
        let next = try await g.checkRedirect(from: try await base(), location: location)
        #expect(next.url == expected)
    }

    @Test func redirectToForbiddenHostsIsRefused() async throws {
        let from = try await base()
        for location in ["http://127.0.0.1/", "http://localhost/", "//169.254.169.254/latest/meta-data/",
                         "http://[::ffff:a9fe:a9fe]/", "http://metadata.google.internal/"] {
            do {
                let next = try await g.checkRedirect(from: from, location: location)
                Issue.record("redirect to \(location) passed as \(next.url)")
            } catch let r as URLRefusal {
                #expect(r.rule == .forbiddenAddress, "\(location): \(r)")
            }
        }
        do {
            _ = try await g.checkRedirect(from: from, location: "http://127.0.0.1/")
        } catch let r as URLRefusal {
            #expect(r.url == "http://127.0.0.1/")
        }
        do {
            _ = try await g.checkRedirect(from: from, location: "//169.254.169.254/latest")
        } catch let r as URLRefusal {
            #expect(r.url == "https://169.254.169.254/latest")
        }
    }

    @Test(arguments: [
        ("file:///etc/passwd", URLRefusal.Rule.scheme), ("gopher://127.0.0.1:70/", .scheme), ("data:,x", .scheme),
        ("http://user@images.example.com/", .credentials), ("\\\\127.0.0.1/x", .malformed),
        ("/a b", .malformed), ("http://2130706433/", .nonCanonicalAddress), ("https://images.example.com:8443/", .port),
        ("localhost:8080/x", .scheme),
    ])
    func redirectsGoThroughEveryRule(location: String, rule: URLRefusal.Rule) async throws {
        let from = try await base()
        do {
            let next = try await g.checkRedirect(from: from, location: location)
            Issue.record("redirect to \(location) passed as \(next.url)")
        } catch let r as URLRefusal {
            #expect(r.rule == rule, "\(location): \(r)")
        }
    }

    @Test func relativeRedirectsKeepPortAndIPv6Literal() async throws {
        let any = URLGuard(policy: URLGuardPolicy(allowedPorts: []), resolver: guardZone)
        let from = try await any.check("http://images.example.com:8443/a/b")
        #expect(try await any.checkRedirect(from: from, location: "c").url == "http://images.example.com:8443/a/c")
        let v6 = try await any.check("http://[2606:4700:4700::1111]:8080/a/b?q")
        #expect(try await any.checkRedirect(from: v6, location: "/z").url == "http://[2606:4700:4700::1111]:8080/z")
        let dot = try await any.check("http://images.example.com./a")
        #expect(try await any.checkRedirect(from: dot, location: "b").url == "http://images.example.com./b")
    }
}

// MARK: - IPAddress and CIDR parsing

@Suite struct IPAddressAndCIDRTests {
    @Test(arguments: [
        ("0.0.0.0", IPAddress.v4(0)), ("127.0.0.1", .v4(0x7f00_0001)), ("255.255.255.255", .v4(0xffff_ffff)),
        ("::", .v6(0, 0)), ("::1", .v6(0, 1)), ("1::", .v6(0x0001_0000_0000_0000, 0)),
        ("1:2:3:4:5:6:7:8", .v6(0x0001_0002_0003_0004, 0x0005_0006_0007_0008)),
        ("1:2:3:4:5:6:7::", .v6(0x0001_0002_0003_0004, 0x0005_0006_0007_0000)),
        ("::2:3:4:5:6:7:8", .v6(0x0000_0002_0003_0004, 0x0005_0006_0007_0008)),
        ("::ffff:1.2.3.4", .v6(0, 0x0000_ffff_0102_0304)), ("1:2:3:4:5:6:1.2.3.4", .v6(0x0001_0002_0003_0004, 0x0005_0006_0102_0304)),
        ("FE80::ABCD", .v6(0xfe80_0000_0000_0000, 0xabcd)), ("0001:0db8::0001", .v6(0x0001_0db8_0000_0000, 1)),
    ])
    func strictParseAccepts(text: String, expected: IPAddress) {
        #expect(IPAddress(text) == expected)
    }

    @Test(arguments: [
        "", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.04", "256.1.1.1", "1.2.3.-1", "1..2.3", "1.2.3.4.", " 1.2.3.4",
        "0x7f.0.0.1", "2130706433", "127.1", "1.2.3.4/32",
        "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8::", "::1:2:3:4:5:6:7:8", ":::", "1:::2", "1::2::3", ":1::", "1::2:", "12345::",
        "::ffff:1.2.3", "::ffff:1.2.3.04", "::1.2.3.4:5", "1:2:3:4:5:6:7:1.2.3.4", "g::", "::1%eth0", "[::1]", ":", "1:2",
        "1:2:3:4:5:6:7", "::ffff:", "1.2.3.4::",
    ])
    func strictParseRefuses(text: String) {
        #expect(IPAddress(text) == nil)
    }

    @Test(arguments: [
        ("2001:0db8:0000:0000:0001:0000:0000:0001", "2001:db8::1:0:0:1"), ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
        ("::ffff:7f00:1", "::ffff:127.0.0.1"), ("FE80::ABCD", "fe80::abcd"), ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),
        ("1:0:0:2:0:0:3:4", "1::2:0:0:3:4"), ("0:0:0:0:0:0:0:0", "::"), ("::7f00:1", "::7f00:1"),
        ("1:2:3:4:5:6:7:0", "1:2:3:4:5:6:7:0"), ("0:1:2:3:4:5:6:7", "0:1:2:3:4:5:6:7"), ("1::", "1::"),
        ("10.0.0.1", "10.0.0.1"),
    ])
    func canonicalText(text: String, expected: String) {
        #expect(IPAddress(text)?.description == expected)
        #expect(IPAddress(expected) == IPAddress(text))
    }

    @Test func bytesAndOctetsInitialisers() {
        #expect(IPAddress(127, 0, 0, 1) == guardIP("127.0.0.1"))
        let bytes: [UInt8] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
        #expect(IPAddress(ipv6Bytes: bytes) == guardIP("fe80::1"))
        #expect(IPAddress(ipv6Bytes: bytes.dropLast()) == nil)
        #expect(guardIP("::1").uriHost == "[::1]" && guardIP("1.2.3.4").uriHost == "1.2.3.4")
    }

    @Test(arguments: [
        ("10.0.0.0/8", "10.0.0.0/8"), ("127.0.0.1", "127.0.0.1/32"), ("0.0.0.0/0", "0.0.0.0/0"),
        ("fd00::/8", "fd00::/8"), ("::1", "::1/128"), ("::/0", "::/0"), ("2001:DB8::/32", "2001:db8::/32"),
        ("::ffff:127.0.0.0/104", "::ffff:127.0.0.0/104"), ("192.168.1.0/24", "192.168.1.0/24"),
    ])
    func cidrParses(text: String, description: String) {
        #expect(CIDR(text)?.description == description)
    }

    @Test(arguments: [
        "", "/8", "10.0.0.0/", "10.0.0.0/33", "::/129", "127.1/32", "127.1", "10.0.0.1/8", "10.0.0.0/08",
        "10.0.0.0/+8", "10.0.0.0/-1", "10.0.0.0/8/8", "fe80::1%eth0/64", "[::1]/128", " 10.0.0.0/8", "10.0.0.0 /8",
        "10.0.0.0/8 ", "fd00::1/8", "10.0.0.0/1000", "localhost/32", "0x7f000001/32",
    ])
    func cidrRefuses(text: String) {
        #expect(CIDR(text) == nil)
    }

    @Test func cidrErrorsSayWhy() {
        #expect(throws: CIDR.ParseError(text: "10.0.0.1/8", reason: "host bits are set (did you mean 10.0.0.0/8?)")) {
            try CIDR(validating: "10.0.0.1/8")
        }
        #expect(throws: CIDR.ParseError(text: "::/129", reason: "prefix length 129 exceeds 128")) {
            try CIDR(validating: "::/129")
        }
        #expect(throws: CIDR.ParseError(text: "10.0.0.0/33", reason: "prefix length 33 exceeds 32")) {
            try CIDR(validating: "10.0.0.0/33")
        }
        #expect(throws: CIDR.ParseError(text: "127.1/32", reason: "'127.1' is not a canonical IPv4 or IPv6 address")) {
            try CIDR(validating: "127.1/32")
        }
    }

    @Test func cidrContains() {
        let ten = guardCIDR("10.0.0.0/8")
        #expect(ten.contains(guardIP("10.0.0.0")) && ten.contains(guardIP("10.255.255.255")))
        #expect(!ten.contains(guardIP("11.0.0.0")) && !ten.contains(guardIP("9.255.255.255")))
        #expect(!ten.contains(guardIP("::ffff:10.0.0.1")))
        let all4 = guardCIDR("0.0.0.0/0")
        #expect(all4.contains(guardIP("255.255.255.255")) && !all4.contains(guardIP("::")))
        let all6 = guardCIDR("::/0")
        #expect(all6.contains(guardIP("ffff::1")) && !all6.contains(guardIP("0.0.0.0")))
        let host = guardCIDR("127.0.0.1")
        #expect(host.contains(guardIP("127.0.0.1")) && !host.contains(guardIP("127.0.0.2")))
        let linkLocal = guardCIDR("fe80::/10")
        #expect(linkLocal.contains(guardIP("febf:ffff::1")) && !linkLocal.contains(guardIP("fec0::")))
        let sixtyFour = guardCIDR("2001:db8:1:2::/64")
        #expect(sixtyFour.contains(guardIP("2001:db8:1:2:ffff:ffff:ffff:ffff")) && !sixtyFour.contains(guardIP("2001:db8:1:3::")))
        let sixtyFive = guardCIDR("2001:db8:1:2:8000::/65")
        #expect(sixtyFive.contains(guardIP("2001:db8:1:2:8000::1")) && !sixtyFive.contains(guardIP("2001:db8:1:2:7fff::1")))
        let single6 = guardCIDR("::1")
        #expect(single6.contains(guardIP("::1")) && !single6.contains(guardIP("::2")) && !single6.contains(guardIP("::")))
        let v127 = guardCIDR("2001:db8::/127")
        #expect(v127.contains(guardIP("2001:db8::1")) && !v127.contains(guardIP("2001:db8::2")))
    }
}
