@testable import Outbound
import Testing

// `--import-private admin|all|none`: every role × address class × port, through the guard the server
// uses (names resolved by a stub zone: e2e may only send traffic to loopback).

private struct PolicyZone: HostResolver {
    struct Failure: Error {}
    let zone: [String: [IPAddress]] = [
        "images.example.com": [IPAddress("93.184.216.34")!],
        "intranet.corp.example": [IPAddress("10.20.30.40")!],
        "mixed.corp.example": [IPAddress("192.168.7.7")!, IPAddress("169.254.169.254")!],
        "127.0.0.1.nip.io": [IPAddress("127.0.0.1")!],
        "loopback-alias.example": [IPAddress("127.0.0.1")!, IPAddress("::1")!],
        "metadata.google.internal": [IPAddress("169.254.169.254")!],
    ]
    func resolve(host: String, port: Int) async throws -> [IPAddress] {
        guard let addresses = zone[host] else { throw Failure() }
        return addresses
    }
}

@Suite struct ImportPolicyTests {
    enum Class: String, CaseIterable {
        case loopback, linkLocal, metadata, loopbackAlias, privateRange, publicAddress
        /// Hosts of this class (IP literals and names), without a port.
        var hosts: [String] {
            switch self {
            case .loopback: return ["127.0.0.1", "127.8.9.10", "[::1]", "[::ffff:127.0.0.1]", "localhost-not-in-zone.invalid"]
            case .linkLocal: return ["169.254.10.1", "[fe80::1]"]
            case .metadata: return ["169.254.169.254", "metadata.google.internal", "[fd00:ec2::254]", "100.100.100.200",
                                    "168.63.129.16", "mixed.corp.example"]
            case .loopbackAlias: return ["127.0.0.1.nip.io", "loopback-alias.example", "2130706433", "0x7f.1", "127.1"]
            case .privateRange: return ["10.1.2.3", "172.16.5.4", "192.168.1.20", "100.64.0.1", "[fd12:3456::1]",
                                        "[::ffff:192.168.1.20]", "intranet.corp.example"]
            case .publicAddress: return ["93.184.216.34", "images.example.com"]
            }
        }
    }

    func guardFor(_ mode: PrivateImportPolicy, allowCIDRs: [String] = [], ports: Set<Int>? = nil) -> URLGuard {
        var policy = URLGuardPolicy()
        policy.privateImports = mode
        policy.allowCIDRs = allowCIDRs.compactMap(CIDR.init)
        if let ports { policy.allowedPorts = ports }
        return URLGuard(policy: policy, resolver: PolicyZone())
    }

    /// nil when the guard lets the URL through, else the refusal.
    func outcome(_ g: URLGuard, _ url: String, asAdmin: Bool) async -> URLRefusal? {
        do {
            _ = try await g.check(url, asAdmin: asAdmin)
            return nil
        } catch let refusal as URLRefusal {
            return refusal
        } catch {
            Issue.record("unexpected error \(error) for \(url)")
            return nil
        }
    }

    @Test(arguments: PrivateImportPolicy.allCases)
    func everyRoleAddressClassAndPort(_ mode: PrivateImportPolicy) async {
        let g = guardFor(mode)
        for asAdmin in [false, true] {
            let opened = mode == .all || (mode == .admin && asAdmin)
            for addressClass in Class.allCases {
                for host in addressClass.hosts {
                    for port in [nil, 80, 8080] as [Int?] {
                        let url = "http://\(host)\(port.map { ":\($0)" } ?? "")/image.qcow2"
                        let refusal = await outcome(g, url, asAdmin: asAdmin)
                        let what = "\(url) admin=\(asAdmin) policy=\(mode)"
                        switch addressClass {
                        case .loopback, .linkLocal, .metadata, .loopbackAlias:
                            // Closed to everyone, whatever the policy: the refusal says so and names the option.
                            #expect(refusal != nil, "\(what) passed")
                            if let refusal, refusal.rule == .forbiddenAddress {
                                // (mixed.corp.example: a member is refused at its private address first.)
                                if opened || host != "mixed.corp.example" {
                                    #expect(refusal.reason.contains("refused for every user"), "\(what): \(refusal.reason)")
                                }
                                #expect(refusal.reason.contains("--import-allow-cidr"), "\(what): \(refusal.reason)")
                            } else if let refusal, port == 8080, !opened, refusal.rule != .nonCanonicalAddress {
                                #expect(refusal.rule == .port, "\(what): \(refusal)")
                            } else if let refusal {
                                // Non-canonical spellings and unresolvable names have their own rules.
                                #expect([.nonCanonicalAddress, .resolution].contains(refusal.rule), "\(what): \(refusal)")
                            }
                        case .privateRange:
                            if opened {
                                #expect(refusal == nil, "\(what) refused: \(refusal?.reason ?? "")")
                            } else if let refusal {
                                if port == 8080 {
                                    #expect(refusal.rule == .port && refusal.reason.contains("--import-allow-port 8080"), "\(what): \(refusal)")
                                } else {
                                    #expect(refusal.rule == .forbiddenAddress, "\(what): \(refusal)")
                                    #expect(refusal.reason.contains("--import-private \(mode == .none ? "admin" : "all")"),
                                            "\(what): \(refusal.reason)")
                                    #expect(refusal.reason.contains("--import-allow-cidr"), "\(what): \(refusal.reason)")
                                }
                            } else {
                                Issue.record("\(what) passed")
                            }
                        case .publicAddress:
                            if port == 8080, !opened {
                                #expect(refusal?.rule == .port, "\(what): \(String(describing: refusal))")
                                #expect(refusal?.reason.contains("--import-allow-port 8080") == true)
                                #expect(refusal?.reason.contains("--import-private admin") == (mode == .admin))
                            } else {
                                #expect(refusal == nil, "\(what) refused: \(refusal?.reason ?? "")")
                            }
                        }
                    }
                }
            }
        }
    }

    /// `--import-allow-cidr` opens a closed class for everyone (the policy never does), and the
    /// redirect target is judged with the same reach as the first URL.
    @Test func theOperatorsRangeOpensWhatThePolicyKeepsClosed() async throws {
        let g = guardFor(.admin, allowCIDRs: ["127.0.0.1/32"])
        #expect(await outcome(g, "http://127.0.0.1/x", asAdmin: false) == nil)
        #expect(await outcome(g, "http://127.0.0.2/x", asAdmin: true)?.rule == .forbiddenAddress)
        let vetted = try await g.check("http://10.0.0.5:8080/x", asAdmin: true)
        #expect(vetted.port == 8080 && vetted.addresses == [IPAddress("10.0.0.5")!])
        await #expect(throws: URLRefusal.self) {
            _ = try await g.checkRedirect(from: vetted, location: "http://10.0.0.6/y", asAdmin: false)
        }
        _ = try await g.checkRedirect(from: vetted, location: "http://10.0.0.6/y", asAdmin: true)
        await #expect(throws: URLRefusal.self) {
            _ = try await g.checkRedirect(from: vetted, location: "http://169.254.169.254/latest/", asAdmin: true)
        }
    }

    @Test func messagesNameTheRuleAndTheOption() async {
        let member = await outcome(guardFor(.admin), "http://192.168.1.20/images/cirros.qcow2", asAdmin: false)
        #expect(member?.reason == "address 192.168.1.20 is private (192.168.0.0/16): only admins may import from private "
                + "addresses (--import-private admin); --import-private all opens them to every user, "
                + "--import-allow-cidr 192.168.1.20/32 opens this address")
        let nobody = await outcome(guardFor(.none), "http://192.168.1.20/x", asAdmin: true)
        #expect(nobody?.reason.hasPrefix("address 192.168.1.20 is private (192.168.0.0/16): imports from private addresses are off (--import-private none)") == true)
        let loop = await outcome(guardFor(.all), "http://[::1]/x", asAdmin: true)
        #expect(loop?.reason == "address ::1 is loopback, refused for every user; an operator opens it with --import-allow-cidr ::1/128")
        let port = await outcome(guardFor(.admin), "http://93.184.216.34:8080/x", asAdmin: false)
        #expect(port?.reason == "port 8080 is not allowed (allowed ports: 80, 443); admins may import from any port "
                + "(--import-private admin), --import-allow-port 8080 opens it to every user")
        let named = await outcome(guardFor(.admin), "http://intranet.corp.example/x", asAdmin: false)
        // A member is told the rule, not what an internal name resolves to; an admin sees the address.
        #expect(named?.reason == "host 'intranet.corp.example' resolves to a forbidden address: it is private (10.0.0.0/8): "
                + "only admins may import from private addresses (--import-private admin); --import-private all opens them "
                + "to every user, --import-allow-cidr opens an address")
        let namedForAdmin = await outcome(guardFor(.none), "http://intranet.corp.example/x", asAdmin: true)
        #expect(namedForAdmin?.reason.hasPrefix("host 'intranet.corp.example' resolves to a forbidden address: address 10.20.30.40 is private") == true)
        #expect(named?.description.hasPrefix("URI for web-download does not pass filtering: http://intranet.corp.example/x (") == true)
    }
}
