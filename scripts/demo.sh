#!/usr/bin/env bash
# Installs what weft needs (Debian 12, as root), builds it (release), and runs `weft demo`.
# Extra arguments go to `weft demo` (e.g. --threads 4 --limit 100000000).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release
exec ./build/release/tools/weft/weft demo "$@"
