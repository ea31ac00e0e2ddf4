# SPDX-License-Identifier: GPL-2.0
# Shared helpers for the coco scripts (sourced).

COCO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
COCO_CACHE=${COCO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/coco}
export COCO_ROOT COCO_CACHE
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf 'coco: %s\n' "$*" >&2; }
warn() { printf 'coco: warning: %s\n' "$*" >&2; }
die() {
	printf 'coco: error: %s\n' "$*" >&2
	exit 1
}
