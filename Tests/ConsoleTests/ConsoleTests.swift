@testable import Console
import FrontEndSupport
import Identity
import Hummingbird
import ImageCore
import Testing

/// The console's pure parts: escaping, the list's URL query, where a login may send the browser.
@Suite struct ConsoleTests {
    @Test func interpolatedTextIsEscapedAndOnlyHTMLPassesThrough() {
        let name = "<script>alert('x')</script> & \"q\""
        let cell: HTML = "<td title=\"\(name)\">\(name)</td>"
        #expect(cell.text == "<td title=\"&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;\">&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;</td>")
        let nested: HTML = "<p>\(HTML(trusted: "<b>ok</b>"))\(Optional<String>.none)\(42)</p>"
        #expect(nested.text == "<p><b>ok</b>42</p>")
        #expect(HTML.escape("plain text é") == "plain text é")
    }

    @Test func theListQueryKeepsKnownValuesAndRoundTripsThroughItsURL() {
        let q = ImagesQuery(["q": "  deb ", "status": "active", "visibility": "nonsense", "disk_format": "qcow2", "tag": "a b",
                             "owner": "p-x", "sort": "name", "dir": "asc", "limit": "5000",
                             "marker": "1AAA43EB-17BB-4906-A6CB-808F8173EE31"], isAdmin: false)
        #expect(q.search == "deb" && q.status == "active" && q.visibility == "" && q.diskFormat == "qcow2" && q.tag == "a b")
        #expect(q.owner == "")  // only admins filter by owner
        #expect(q.sort == .init(.name, .asc) && q.limit == ImagesQuery.maxLimit)
        #expect(q.marker == "1aaa43eb-17bb-4906-a6cb-808f8173ee31")
        #expect(q.filters == [.nameContains("deb"), .oneOf(.status, ["active"]), .oneOf(.diskFormat, ["qcow2"]), .tag("a b")])
        let url = q.url(keepMarker: true)
        #expect(url == "/console/images?q=deb&status=active&disk_format=qcow2&tag=a+b&sort=name&dir=asc&limit=200&marker=1aaa43eb-17bb-4906-a6cb-808f8173ee31")
        let query = String(url.split(separator: "?")[1])
        let again = ImagesQuery(Dictionary(RequestReading.formPairs(query), uniquingKeysWith: { a, _ in a }), isAdmin: false)
        #expect(again.url(keepMarker: true) == url)
        // A bad sort key or marker is dropped, not passed on.
        let odd = ImagesQuery(["sort": "owner; DROP", "marker": "../../x", "status": "<b>"], isAdmin: true)
        #expect(odd.sort == .init(.createdAt, .desc) && odd.marker == nil && odd.status == "")
    }

    @Test func aLoginOnlyReturnsToAConsolePage() {
        #expect(WebConsole<BasicRequestContext>.safeNext("/console/images?tag=x") == "/console/images?tag=x")
        for bad in ["https://evil.example/", "//evil.example/console/", "/console/\\evil", "/v2/images", "/console/\u{0A}x", nil] {
            #expect(WebConsole<BasicRequestContext>.safeNext(bad) == nil, "\(String(describing: bad))")
        }
    }

    @Test func prettyJSONIndentsAndKeepsValues() {
        #expect(PrettyJSON.format(#"{"a":[1,{"b":"<x>"}],"c":{},"d":null}"#) == """
            {
              "a": [
                1,
                {
                  "b": "<x>"
                }
              ],
              "c": {},
              "d": null
            }
            """)
        #expect(PrettyJSON.format("not json") == "not json")
    }

    @Test func sizesReadLikeTheCLI() {
        #expect(ConsolePages.size(nil) == "" && ConsolePages.size(512) == "512 B" && ConsolePages.size(262_144) == "256 KiB")
        #expect(ConsolePages.size(1_610_612_736) == "1.5 GiB")
    }
}

/// The usage page's charts and figures.
@Suite struct ConsoleUsageTests {
    static func share(_ owner: String, _ format: String, _ stores: String, images: Int64, bytes: Int64) -> StoredShare {
        StoredShare(owner: owner, diskFormat: format, stores: stores, images: images, bytes: bytes)
    }

    @Test func bytesAreSummedPerStorePerFormatAndPerProject() {
        let facts = UsageFacts(projects: [], shares: [
            Self.share("p1", "qcow2", "fast", images: 2, bytes: 100), Self.share("p1", "raw", "", images: 1, bytes: 30),
            Self.share("p2", "qcow2", "fast,slow", images: 1, bytes: 7),
        ], tasks: [], defaultStore: "file", readiness: nil, nodeId: "n")
        func values(_ bars: [ConsoleCharts.Bar]) -> [String: Int64] { Dictionary(uniqueKeysWithValues: bars.map { ($0.label, $0.value) }) }
        // An image in two stores counts in each; one without `stores` is in the default store.
        #expect(values(facts.byStore) == ["fast": 107, "slow": 7, "file": 30])
        #expect(values(facts.byFormat) == ["qcow2": 107, "raw": 30])
        #expect(values(facts.byProject) == ["p1": 130, "p2": 7])
        #expect(facts.byStore.first { $0.label == "fast" }?.note == "3 images")
    }

    @Test func barsAreInProportionLargestFirstEscapedAndTheTailIsSummed() throws {
        var bars = [ConsoleCharts.Bar(label: "<b>big</b>", value: 1000, note: ""), ConsoleCharts.Bar(label: "half", value: 500, note: ""),
                    ConsoleCharts.Bar(label: "zero", value: 0, note: "")]
        let svg = ConsoleCharts.bars(id: "c", title: "T", bars, unit: { "\($0) B" }).text
        #expect(!svg.contains("<b>") && svg.contains("&lt;b&gt;big&lt;/b&gt;"))
        #expect(!svg.contains("zero"))  // nothing to draw for an empty share
        let span = ConsoleCharts.width - ConsoleCharts.labelWidth - ConsoleCharts.valueWidth
        #expect(svg.contains("width=\"\(span)\"") && svg.contains("width=\"\(span / 2)\""))
        #expect(svg.range(of: "big")!.lowerBound < svg.range(of: "half")!.lowerBound)
        #expect(!svg.contains("style="))  // the CSP allows no inline style
        bars = (1...20).map { ConsoleCharts.Bar(label: "s\($0)", value: Int64($0), note: "") }
        let limited = ConsoleCharts.bars(id: "c", title: "T", bars, limit: 5, unit: { "\($0)" }).text
        // 20, 19, 18, 17 and the 16 others summed: 1 + … + 16 = 136.
        #expect(limited.contains("16 others: 136") && limited.components(separatedBy: "<rect").count - 1 == 5)
        #expect(ConsoleCharts.bars(id: "c", title: "T", [], unit: { "\($0)" }).text.contains("Nothing stored yet."))
    }

    @Test func aQuotaCellShowsAMeterOnlyWhenThereIsALimit() {
        let limited = ConsoleUsagePage.meter(250, 1000, "images", { "\($0)" }).text
        #expect(limited.contains("<meter min=\"0\" max=\"1000\" low=\"800\" high=\"950\" optimum=\"0\" value=\"250\"") && limited.contains("(25 %)"))
        let over = ConsoleUsagePage.meter(1500, 1000, "images", { "\($0)" }).text
        #expect(over.contains("value=\"1000\"") && over.contains("1500 of 1000") && over.contains("(150 %)"))
        let unlimited = ConsoleUsagePage.meter(7, nil, "images", { "\($0)" }).text
        #expect(!unlimited.contains("<meter") && unlimited.contains("no limit"))
    }
}

/// Keystone console sessions: the token sealed in the cookie, opened only by this site's key, until its end.
@Suite struct ConsoleKeystoneCookieTests {
    @Test func aSealedSessionOpensOnlyWithTheKeyUntouchedAndBeforeItsEnd() throws {
        let authenticator = KeystoneAuthenticator(config: KeystoneConfig(authURL: "http://127.0.0.1:1/v3", username: "u", password: "p", projectName: "s"))
        let keystone = ConsoleKeystone(authenticator: authenticator, sealer: try SecretSealer(keyBytes: Array(repeating: 7, count: 32)))
        let other = ConsoleKeystone(authenticator: authenticator, sealer: try SecretSealer(keyBytes: Array(repeating: 8, count: 32)))
        let session = ConsoleKeystone.Sealed(token: "gAAAAAB-token", csrf: "csrf-1", expiresAt: 2_000)
        let cookie = try keystone.seal(session)
        #expect(cookie.hasPrefix("ks1.") && !cookie.contains("gAAAAAB") && !cookie.contains(";") && !cookie.contains(" "))
        #expect(keystone.open(cookie, now: 1_999) == session)
        #expect(keystone.open(cookie, now: 2_000) == nil)  // ended
        #expect(other.open(cookie, now: 1_000) == nil)  // another site's key
        var tampered = Array(cookie.utf8)
        tampered[tampered.count / 2] ^= 1
        #expect(keystone.open(String(decoding: tampered, as: UTF8.self), now: 1_000) == nil)
        #expect(keystone.open("ks1.", now: 1_000) == nil && keystone.open("plain-session-id", now: 1_000) == nil)
    }
}
