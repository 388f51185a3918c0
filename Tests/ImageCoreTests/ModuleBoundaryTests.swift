import Foundation
import Testing

/// The one door (design.md): front-ends and their shared support reach the catalog only through
/// `ImageService` and the services beside it. The compiler enforces most of it (`ImageService.catalog`
/// and `LocalAccounts.catalog` are internal to their modules); this suite keeps the rest from
/// creeping back: no front-end target depends on a catalog target, names a catalog type or reads
/// a `.catalog` member, and the two members stay non-public.
@Suite struct ModuleBoundaryTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let frontEnds = ["OpenStackAPI", "AviAPI", "ZStackAPI", "DanubeAPI", "ScalrAPI", "FrontEndSupport"]

    static func sources(of target: String) throws -> [(String, String)] {
        let dir = root.appendingPathComponent("Sources/\(target)")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".swift") }
        #expect(!names.isEmpty, "no sources found for \(target)")
        return try names.map { ($0, try String(contentsOf: dir.appendingPathComponent($0), encoding: .utf8)) }
    }

    /// Lines without `//` comments, so prose may name the catalog.
    static func code(_ text: String) -> [String] {
        text.split(separator: "\n").map { line in
            guard let r = line.range(of: "//") else { return String(line) }
            return String(line[..<r.lowerBound])
        }
    }

    @Test(arguments: frontEnds)
    func frontEndCodeNeverTouchesACatalog(_ target: String) throws {
        let forbidden = [".catalog", "any Catalog", "TaskCatalog", "AccountCatalog", "import CatalogSQL", "import CatalogSQLite",
                         "import CatalogPostgres", "import GRDB", "import PostgresNIO", "SQLiteCatalog", "PostgresCatalog"]
        for (name, text) in try Self.sources(of: target) {
            for (number, line) in Self.code(text).enumerated() {
                for word in forbidden where line.contains(word) {
                    Issue.record("Sources/\(target)/\(name):\(number + 1) reaches the catalog (\(word)): \(line)")
                }
            }
        }
    }

    @Test(arguments: frontEnds)
    func frontEndTargetsDoNotDependOnCatalogTargets(_ target: String) throws {
        let manifest = try String(contentsOf: Self.root.appendingPathComponent("Package.swift"), encoding: .utf8)
        let start = try #require(manifest.range(of: ".target(name: \"\(target)\""), "\(target) is not declared in Package.swift")
        let rest = manifest[start.upperBound...]
        let end = rest.range(of: "swiftSettings")?.lowerBound ?? rest.endIndex
        let dependencies = rest[..<end]
        for catalogTarget in ["\"CatalogSQL\"", "\"CatalogSQLite\"", "\"CatalogPostgres\"", "\"Server\""] {
            #expect(!dependencies.contains(catalogTarget), "\(target) depends on \(catalogTarget)")
        }
    }

    @Test func theServicesKeepTheirCatalogsToThemselves() throws {
        let service = try String(contentsOf: Self.root.appendingPathComponent("Sources/ImageCore/ImageService.swift"), encoding: .utf8)
        #expect(service.contains("\n    let catalog: any Catalog"))
        #expect(!service.contains("public let catalog") && !service.contains("package let catalog"))
        let accounts = try String(contentsOf: Self.root.appendingPathComponent("Sources/Identity/LocalAccounts.swift"), encoding: .utf8)
        #expect(accounts.contains("\n    let catalog: any AccountCatalog"))
        #expect(!accounts.contains("public let catalog") && !accounts.contains("package let catalog"))
    }
}
