import Foundation

/// An exclusive `flock` on `<data-dir>/lock`. The kernel drops it when the process dies, even by SIGKILL.
public final class DataDirectoryLock: Sendable {
    let fd: Int32

    public init(directory: String) throws {
        let path = directory + "/lock"
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ConfigError("cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw ConfigError("another imaged process is using \(directory) (\(path) is locked)")
        }
    }

    deinit { close(fd) }
}
