@testable import Console
import FrontEndSupport
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
