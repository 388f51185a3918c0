import ImageCore
import FrontEndSupport
import ImageData
@testable import OpenStackAPI
import Server
import Testing

/// `GET /v2/tasks` parsing and paging, and `POST /v2/tasks` body checks, without a server.
@Suite struct TaskListTests {
    static func task(_ n: Int, type: String = "import", status: ImageTask.Status = .success, created: Int64) -> ImageTask {
        ImageTask(id: "00000000-0000-4000-8000-00000000000\(n)", type: type, status: status, owner: "p", imageId: nil,
                  userId: "u", requestId: nil, input: "{}", createdAt: created, updatedAt: created)
    }

    @Test func parsesGlanceParameters() throws {
        let q = try TaskListParameters.parse("limit=5000&sort_key=status&sort_dir=asc&status=failure&type=import&owner=p&created_at=x&marker=ABCDEF00-0000-4000-8000-000000000001",
                                             defaultLimit: 25, maxLimit: 1000)
        #expect(q.limit == 1000 && q.sortKey == .status && q.direction == .asc)
        #expect(q.marker == "abcdef00-0000-4000-8000-000000000001")
        #expect(q.filters.map { "\($0.0.rawValue)=\($0.1)" } == ["status=failure", "type=import", "owner=p"])
        #expect(q.types == ["api_image_import", "import", "location_import"])
        let d = try TaskListParameters.parse(nil, defaultLimit: 25, maxLimit: 1000)
        #expect(d.limit == 25 && d.sortKey == .createdAt && d.direction == .desc && d.filters.isEmpty)
    }

    @Test(arguments: [("status=done", "Invalid status value: done"), ("type=api_image_import", "Invalid type value"),
                      ("sort_dir=sideways", "Invalid sort direction"), ("sort_key=input", "Invalid sort key: input"),
                      ("limit=1.5", "must be an integer"), ("limit=-2", "must be positive"), ("marker=42", "Invalid marker format")])
    func refusesBadValues(query: String, message: String) {
        do {
            _ = try TaskListParameters.parse(query, defaultLimit: 25, maxLimit: 1000)
            Issue.record("\(query) was accepted")
        } catch {
            #expect(error.kind == .badRequest && error.message.contains(message))
        }
    }

    @Test func pagesInOrderAfterTheMarker() throws {
        let tasks = [Self.task(1, created: 10), Self.task(2, status: .failure, created: 30), Self.task(3, created: 20),
                     Self.task(4, type: "zstack_job", created: 40), Self.task(5, type: "api_image_import", created: 20)]
        var q = TaskListQuery(limit: 2)
        q.types = TaskListParameters.glanceTypes
        // Newest first; a tie on created_at is broken by id in the same direction.
        #expect(q.page(of: tasks)?.map(\.id.last) == ["2", "5"])
        q.marker = tasks[4].id
        #expect(q.page(of: tasks)?.map(\.id.last) == ["3", "1"])
        q.marker = tasks[0].id
        #expect(q.page(of: tasks)?.isEmpty == true)
        q.marker = "00000000-0000-4000-8000-000000000009"
        #expect(q.page(of: tasks) == nil)  // unknown marker: 400 upstream
        var byStatus = TaskListQuery(limit: 10)
        byStatus.types = TaskListParameters.glanceTypes
        byStatus.filters = [(.status, "success")]
        byStatus.sortKey = .id
        byStatus.direction = .asc
        #expect(byStatus.page(of: tasks)?.map(\.id.last) == ["1", "3", "5"])
    }

    @Test func linksKeepTheQueryAndMarkTheLastTask() {
        let page = [Self.task(1, created: 1), Self.task(2, created: 2)]
        let full = TaskListParameters.links("limit=2&status=success&marker=x", page: page, limit: 2)
        #expect(full.first == "/v2/tasks?limit=2&status=success")
        #expect(full.next == "/v2/tasks?limit=2&status=success&marker=\(page[1].id)")
        let short = TaskListParameters.links(nil, page: page, limit: 25)
        #expect(short.first == "/v2/tasks" && short.next == nil)
        #expect(RequestReading.formEncode("a b&c=d/é") == "a+b%26c%3Dd%2F%C3%A9")
    }

    @Test func createBodyChecks() throws {
        let ok = try JSONValue.parse(#"{"type":"import","input":{"import_from":"http://x/y"}}"#)
        #expect(try TaskRoutes<ImagedRequestContext>.createBody(ok).type == "import")
        for (text, message) in [(#"{"input":{}}"#, "Task 'type' is required"), (#"{"type":"import"}"#, "Task 'input' is required"),
                                (#"{"type":"x","input":{}}"#, "is not one of"), (#"{"type":"import","input":[]}"#, "is not of type"),
                                (#"{"type":"import","input":null}"#, "is not of type"), (#"{"type":"import","input":{},"a":1}"#, "'a' was unexpected"),
                                (#"{"type":"location_import","input":{}}"#, "image import API")] {
            do {
                _ = try TaskRoutes<ImagedRequestContext>.createBody(try JSONValue.parse(text))
                Issue.record("\(text) was accepted")
            } catch let e as GlanceError {
                #expect(e.status == .badRequest && e.message.contains(message), "\(text): \(e.message)")
            }
        }
    }
}

@Suite struct QueryPairsTests {
    /// Glance's (WebOb's) splitting: `&` separates, the first `=` splits, empty parts are dropped,
    /// `+` and escapes decode after the split (so an escaped `&` or `=` stays in its value).
    @Test func splitsOnTheFirstEqualsAndDropsEmptyParts() {
        let found = ListParameters.pairs("a=1&&b=&=c&d&e=f=g&x=%41+b%26c%3Dd&&")
        #expect(found.map { "\($0.0)|\($0.1)" } == ["a|1", "b|", "|c", "d|", "e|f=g", "x|A b&c=d"])
        #expect(ListParameters.pairs(nil).isEmpty)
        #expect(ListParameters.pairs("").isEmpty)
        #expect(ListParameters.pairs("&&&").isEmpty)
        let wide = ListParameters.pairs("é=ü☃&name=a\u{301}&\u{301}=x")
        #expect(wide.map { "\($0.0)|\($0.1)" } == ["é|ü☃", "name|a\u{301}", "\u{301}|x"])
    }

    /// A page's `first` link keeps the query as written, less every `marker` (spelt with escapes too).
    @Test func firstLinkDropsEveryMarker() {
        #expect(ListParameters.withoutMarker("marker=x&limit=2&&marker=y&%6Darker=z&sort=name:asc&markers=1&q=a%26marker%3D1")
                == "limit=2&sort=name:asc&markers=1&q=a%26marker%3D1")
        #expect(ListParameters.withoutMarker(nil) == "")
        #expect(ListParameters.withoutMarker("marker") == "")
    }
}
