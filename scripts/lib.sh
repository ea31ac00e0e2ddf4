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

# The Debian mirror this machine already uses: the suites and sources we add come from it.
debian_mirror() {
	local uri
	uri=$(awk '/^URIs:/ {u=$2} /^Suites:/ && /bookworm( |$)/ {print u; exit}' \
		/etc/apt/sources.list.d/*.sources 2>/dev/null || true)
	if [ -z "$uri" ]; then
		uri=$(awk '$1=="deb" && $3 ~ /^bookworm$/ {print $2; exit}' \
			/etc/apt/sources.list 2>/dev/null || true)
	fi
	[ -n "$uri" ] || die "cannot find the Debian bookworm mirror in /etc/apt sources"
	echo "$uri"
}
