#!/usr/bin/env bash
# Builds imaged (release by default) and runs `imaged serve` with the given arguments.
# With no arguments: the embedded default, http://127.0.0.1:9292, everything in ./imaged-data.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/deps.sh
ensure_debian_packages "${imaged_build_packages[@]}"
config="${IMAGED_BUILD:-release}"
swift build -c "$config" --product imaged
exec ".build/$config/imaged" serve "$@"
