# Shared by scripts/serve.sh, scripts/test.sh and bench/: installs Debian packages only when missing.

# What `swift build` links against: SQLite, OpenSSL's libcrypto (digests), and the decoders of
# compressed images (zlib, liblzma, libzstd, libbz2; Sources/CCompression).
imaged_build_packages=(libsqlite3-dev libssl-dev zlib1g-dev liblzma-dev libzstd-dev libbz2-dev)

ensure_debian_packages() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing Debian packages: ${missing[*]}"
        local sudo=""
        [ "$(id -u)" -ne 0 ] && sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# ensure_command COMMAND PACKAGE: installs the Debian package when the command is missing.
ensure_command() {
    command -v "$1" >/dev/null 2>&1 && return 0
    echo "installing $2 (Debian package, for $1)" >&2
    ensure_debian_packages "$2"
    command -v "$1" >/dev/null 2>&1 || { echo "cannot install $2" >&2; exit 1; }
}
