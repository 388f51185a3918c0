import ArgumentParser
import Foundation
import ImageCore

/// `imaged metadefs load DIR`: an operator's metadata definitions, one namespace per JSON file in
/// Glance's format (glance/etc/metadefs/*.json), written straight into the catalog (the server reads
/// metadefs uncached, so this may run while `imaged serve` does).
struct MetadefsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metadefs", abstract: "Metadata definitions (Glance's metadefs).", subcommands: [Load.self])

    struct Load: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load every *.json file of a directory (or one file) as a metadata definition namespace.")
        @Argument(help: "A directory of Glance metadef JSON files, or one file.") var path: String
        @Flag(help: "Replace namespaces that exist (their objects, properties, tags and associations too); by default they are skipped.")
        var replace = false
        @OptionGroup var store: CatalogOptions

        func run() async throws {
            let files = try Self.files(path)
            guard !files.isEmpty else { throw ValidationError("no .json file in \(path)") }
            let metadefs = ImageService(catalog: try await store.open()).metadefs
            var failed = 0
            for file in files {
                do {
                    let data = try Data(contentsOf: URL(fileURLWithPath: file))
                    let (name, outcome) = try await metadefs.load(try JSONValue.parse(Array(data)), replace: replace)
                    let word = switch outcome {
                    case .created: "loaded"
                    case .replaced: "replaced"
                    case .skipped: "skipped (exists; --replace to overwrite)"
                    }
                    print("\(file): \(name) \(word)")
                } catch {
                    failed += 1
                    let reason = (error as? ImageError)?.message ?? "\(error)"
                    FileHandle.standardError.write(Data("\(file): not loaded: \(reason)\n".utf8))
                }
            }
            if failed > 0 { throw ExitCode(1) }
        }

        static func files(_ path: String) throws -> [String] {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw ValidationError("\(path) does not exist") }
            guard isDir.boolValue else { return [path] }
            return try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".json") }.sorted()
                .map { (path as NSString).appendingPathComponent($0) }
        }
    }
}
