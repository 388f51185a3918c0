import HTTPTypes
import ImageCore
import Testing

/// The whole default policy through the HTTP API: every caller × image situation × action, with
/// the status (and, for lists, the presence) Glance gives. Images belong to project "pa".
@Suite struct PolicyMatrixTests {
    enum Caller: String, CaseIterable {
        case admin, ownerMember = "owner-member", otherMember = "other-member"
        case ownerReader = "owner-reader", otherReader = "other-reader", anonymous

        var token: String? {
            switch self {
            case .admin: Tok.admin          // admin of another project: admin is global
            case .ownerMember: Tok.alice    // member of pa
            case .otherMember: Tok.bob      // member of pb
            case .ownerReader: Tok.reader   // reader of pa
            case .otherReader: Tok.readerB  // reader of pb
            case .anonymous: nil
            }
        }
    }

    enum Situation: String, CaseIterable {
        case `public`, `private`, sharedNotMember = "shared-not-member", sharedAccepted = "shared-accepted", community
    }

    enum Action: String, CaseIterable { case list, show, download, update, delete, share }

    /// Columns: list (L = in the default list, - = not listed), show, download, update, delete, share.
    /// Other projects' community images stay out of default lists, even an admin's (reference §7.5).
    static let table = """
        admin         public             L 200 200 200 204 403
        admin         private            L 200 200 200 204 403
        admin         shared-not-member  L 200 200 200 204 200
        admin         shared-accepted    L 200 200 200 204 200
        admin         community          - 200 200 200 204 403
        owner-member  public             L 200 200 200 204 403
        owner-member  private            L 200 200 200 204 403
        owner-member  shared-not-member  L 200 200 200 204 200
        owner-member  shared-accepted    L 200 200 200 204 200
        owner-member  community          L 200 200 200 204 403
        other-member  public             L 200 200 403 403 403
        other-member  private            - 404 404 404 404 404
        other-member  shared-not-member  - 404 404 404 404 404
        other-member  shared-accepted    L 200 200 403 403 403
        other-member  community          - 200 200 403 403 403
        owner-reader  public             L 200 403 403 403 403
        owner-reader  private            L 200 403 403 403 403
        owner-reader  shared-not-member  L 200 403 403 403 403
        owner-reader  shared-accepted    L 200 403 403 403 403
        owner-reader  community          L 200 403 403 403 403
        other-reader  public             L 200 403 403 403 403
        other-reader  private            - 404 404 404 404 404
        other-reader  shared-not-member  - 404 404 404 404 404
        other-reader  shared-accepted    L 200 403 403 403 403
        other-reader  community          - 200 403 403 403 403
        anonymous     public             401 401 401 401 401 401
        anonymous     private            401 401 401 401 401 401
        anonymous     shared-not-member  401 401 401 401 401 401
        anonymous     shared-accepted    401 401 401 401 401 401
        anonymous     community          401 401 401 401 401 401
        """

    struct Cell: CustomStringConvertible {
        let caller: Caller, situation: Situation, action: Action, expected: String
        var description: String { "\(caller.rawValue) × \(situation.rawValue) × \(action.rawValue)" }
    }

    static var cells: [Cell] {
        table.split(separator: "\n").flatMap { line -> [Cell] in
            let f = line.split(separator: " ").map(String.init)
            let caller = Caller(rawValue: f[0])!, situation = Situation(rawValue: f[1])!
            return zip(Action.allCases, f[2...]).map { Cell(caller: caller, situation: situation, action: $0, expected: $1) }
        }
    }

    @Test func tableIsComplete() {
        let cells = Self.cells
        #expect(cells.count == Caller.allCases.count * Situation.allCases.count * Action.allCases.count)
        #expect(Set(cells.map(\.description)).count == cells.count)
    }

    /// An active image of project "pa" with 16 bytes of data, in the given situation towards project "pb".
    static func makeImage(_ api: API, _ s: Situation) async throws -> String {
        let id = try await api.create(#"{"name":"m","disk_format":"raw","container_format":"bare"}"#)
        #expect(try await api.upload(id, Array(0..<16)).status == .noContent)
        let visibility = s == .sharedNotMember || s == .sharedAccepted ? "shared" : s.rawValue
        let r = try await api.patch(id, #"[{"op":"replace","path":"/visibility","value":"\#(visibility)"}]"#, token: Tok.admin)
        #expect(r.status == .ok, "\(r.text)")
        if s == .sharedAccepted {
            #expect(try await api.call(.post, "/v2/images/\(id)/members", json: #"{"member":"pb"}"#).status == .ok)
            #expect(try await api.call(.put, "/v2/images/\(id)/members/pb", token: Tok.bob, json: #"{"status":"accepted"}"#).status == .ok)
        }
        return id
    }

    @Test(arguments: Situation.allCases)
    func matrix(_ situation: Situation) async throws {
        try await withAPI { api in
            for cell in Self.cells where cell.situation == situation {
                let id = try await Self.makeImage(api, situation)
                let token = cell.caller.token
                let got: String
                switch cell.action {
                case .list:
                    let r = try await api.call(.get, "/v2/images?limit=1000", token: token)
                    if r.status == .ok {
                        got = r["images"]?.arrayValue.contains { $0["id"] == .string(id) } == true ? "L" : "-"
                    } else {
                        got = String(r.status.code)
                    }
                case .show:
                    got = String(try await api.call(.get, "/v2/images/\(id)", token: token).status.code)
                case .download:
                    let r = try await api.call(.get, "/v2/images/\(id)/file", token: token, accept: nil)
                    got = String(r.status.code)
                    if r.status == .ok { #expect(r.bytes == Array(0..<16), "\(cell): downloaded bytes") }
                case .update:
                    let r = try await api.patch(id, #"[{"op":"replace","path":"/name","value":"renamed"}]"#, token: token ?? "")
                    got = String(r.status.code)
                    let name = try await api.show(id, token: Tok.admin)["name"]
                    #expect(name == .string(r.status == .ok ? "renamed" : "m"), "\(cell): name after update")
                case .delete:
                    let r = try await api.call(.delete, "/v2/images/\(id)", token: token)
                    got = String(r.status.code)
                    let after = try await api.call(.get, "/v2/images/\(id)", token: Tok.admin).status
                    #expect(after == (r.status == .noContent ? .notFound : .ok), "\(cell): image after delete")
                case .share:
                    let r = try await api.call(.post, "/v2/images/\(id)/members", token: token, json: #"{"member":"pc"}"#)
                    got = String(r.status.code)
                    let members = try await api.call(.get, "/v2/images/\(id)/members", token: Tok.admin)
                    let hasPC = members["members"]?.arrayValue.contains { $0["member_id"] == .string("pc") } == true
                    #expect(hasPC == (r.status == .ok), "\(cell): member pc after share")
                }
                #expect(got == cell.expected, "\(cell): expected \(cell.expected), got \(got)")
            }
        }
    }
}
