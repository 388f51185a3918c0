import FrontEndSupport
import Testing
@testable import AviAPI
@testable import ZStackAPI

/// The pure rules behind issue 19's probe findings: what a log line may show, which Origins are
/// this server, which job ids are acceptable, how page sizes are capped.
@Suite struct ProbeFindingsTests {
    @Test func secretsInPathsAreMasked() {
        #expect(LogRedaction.path("/zstack/v1/accounts/sessions/5f3a9c/valid") == "/zstack/v1/accounts/sessions/<redacted>/valid")
        #expect(LogRedaction.path("/zstack/v1/accounts/sessions/5f3a9c") == "/zstack/v1/accounts/sessions/<redacted>")
        #expect(LogRedaction.path("/zstack/v1/uploads/0a1b/deadbeef") == "/zstack/v1/uploads/0a1b/<redacted>")
        #expect(LogRedaction.path("/zstack/v1/exports/bs1/img1/cafe/image-img1.qcow2") == "/zstack/v1/exports/bs1/img1/<redacted>/image-img1.qcow2")
        // Paths without secrets are kept as they are.
        for plain in ["/v2/images/abc", "/zstack/v1/images/abc", "/zstack/v1/accounts/login", "/api/image", "/", ""] {
            #expect(LogRedaction.path(plain) == plain)
        }
    }

    @Test func secretQueryParametersAreMasked() {
        #expect(LogRedaction.query("token=abc&limit=5") == "token=<redacted>&limit=5")
        #expect(LogRedaction.query("X-Amz-Signature=f00&X-Amz-Date=20260101&X-Amz-Credential=AK%2F1")
                == "X-Amz-Signature=<redacted>&X-Amz-Date=20260101&X-Amz-Credential=<redacted>")
        #expect(LogRedaction.query("sessionid=s1&Signature=x&security_token=t") == "sessionid=<redacted>&Signature=<redacted>&security_token=<redacted>")
        #expect(LogRedaction.query("q=name%3Dtoken&flag") == "q=name%3Dtoken&flag")
        #expect(LogRedaction.target(path: "/zstack/v1/uploads/u/secret1", query: "token=secret2")
                == "/zstack/v1/uploads/u/<redacted>?token=<redacted>")
        #expect(LogRedaction.target(path: "/v2/images", query: nil) == "/v2/images")
    }

    @Test func originsMatchOnlyThisServer() {
        let ours = ["http://imaged.example:9292", "https://images.corp.example"]
        #expect(AviOrigin.matches("http://imaged.example:9292", ours: ours))
        #expect(AviOrigin.matches("HTTP://IMAGED.example:9292", ours: ours))
        #expect(AviOrigin.matches("https://images.corp.example:443", ours: ours))
        #expect(AviOrigin.matches("https://images.corp.example/ui/images?x=1", ours: ours))  // a Referer
        #expect(!AviOrigin.matches("http://imaged.example", ours: ours))          // port 80, not 9292
        #expect(!AviOrigin.matches("https://imaged.example:9292", ours: ours))    // another scheme
        #expect(!AviOrigin.matches("http://evil.example:9292", ours: ours))
        #expect(!AviOrigin.matches("null", ours: ours))
        #expect(!AviOrigin.matches("/relative/referer", ours: ours))
        #expect(AviOrigin.refusal(header: "Origin", value: "http://evil.example").status == .forbidden)
    }

    @Test func jobIdsAreNonNilHexUUIDs() {
        #expect(ZStackJobs.isJobUUID("0123456789abcdefABCDEF0123456789"))
        #expect(!ZStackJobs.isJobUUID(String(repeating: "0", count: 32)))
        #expect(!ZStackJobs.isJobUUID("0123456789abcdef0123456789abcde"))        // 31
        #expect(!ZStackJobs.isJobUUID("0123456789abcdef0123456789abcdeg"))       // not hex
        #expect(!ZStackJobs.isJobUUID("01234567-89ab-cdef-0123-456789abcdef"))   // hyphens
    }

    @Test func pageSizesAreCappedAtTheDocumentedMaximum() throws {
        #expect(PageWindow.cappedSize(5, max: 200) == 5)
        #expect(PageWindow.cappedSize(200, max: 200) == 200)
        #expect(PageWindow.cappedSize(Int.max, max: 200) == 200)
        #expect(PageWindow.cappedSize(-3, max: 200) == 0)
        #expect(try ZStackQuery(parameters: [("limit", "1000000")]).limit == 1000)
        #expect(try ZStackQuery(parameters: [("limit", "7")]).limit == 7)
        #expect(try ZStackQuery(parameters: []).limit == 1000)
    }
}
