import Foundation
import ImageData
import Logging

/// The node's image converter (qemu-img, sandboxed; scratch space under `<data-dir>/convert`), or nil when
/// qemu-img cannot run here: imports asking for `convert_to` are then refused at the request (400).
/// A store that converts its images (`?convert=`) cannot work without it, so the node does not start.
func makeConverter(_ config: ServerConfig, dataDir: String, logger: Logger) throws -> ImageConverter? {
    var options = ConversionConfig(directory: dataDir + "/convert")
    options.qemuImg = config.qemuImg
    options.timeoutSeconds = config.convertTimeoutSeconds
    let converter = try ImageConverter(config: options, logger: logger)
    guard converter.available() else {
        if !config.storeConversions.isEmpty {
            throw ConfigError("a store converts images (?convert=) but \(config.qemuImg) cannot run: install qemu-utils or name it with --qemu-img")
        }
        logger.info("image conversion off: \(config.qemuImg) not found (Debian's qemu-utils)")
        return nil
    }
    return converter
}
