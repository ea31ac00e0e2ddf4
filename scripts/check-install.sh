#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# check-install.sh: runs `make install DESTDIR=<tmp> INSTALL_MOD_PATH=<tmp>`
# (the rig's build: coco.ko from $COCO_CACHE/modules) and compares what it
# installed with the layout README.md states (the code block after the line
# ending with "`make install` installs:"): every path listed there (globs
# allowed, <release> the kernel release, a trailing / a directory) exists, and
# every installed file is listed. Prints the differences; exit status 1 on any.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KB=${COCO_KBUILD:-$COCO_CACHE/build}
rel=$(cat "$KB/include/config/kernel.release" 2>/dev/null) || die "no kernel build in $KB"
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT

make -s -C "$COCO_ROOT" install DESTDIR="$dest" INSTALL_MOD_PATH="$dest" >"$dest.log" 2>&1 || {
	cat "$dest.log" >&2
	rm -f "$dest.log"
	die "make install failed"
}
rm -f "$dest.log"

awk '/`make install` installs:$/ { want = 1; next }
	want && /^[ \t]*```/ { if (on) exit; on = 1; next }
	on { sub(/[ \t]+#.*$/, ""); if ($0 != "") print $1 }' "$COCO_ROOT/README.md" |
	sed "s|<release>|$rel|g" >"$dest/.layout"
[ -s "$dest/.layout" ] || die "README.md states no install layout (no code block after the line ending with: make install installs:)"

rc=0
while read -r want; do
	case "$want" in
	*/)
		# shellcheck disable=SC2086 # globs on purpose
		ls -d "$dest"${want%/} >/dev/null 2>&1 && [ -d "$(ls -d "$dest"${want%/} | head -n 1)" ] ||
			{ echo "README lists directory $want: not installed"; rc=1; }
		;;
	*)
		# shellcheck disable=SC2086
		ls -d "$dest"$want >/dev/null 2>&1 || { echo "README lists $want: not installed"; rc=1; }
		;;
	esac
done <"$dest/.layout"
(cd "$dest" && find . -type f ! -name .layout | sed 's|^\.||') | while read -r f; do
	listed=0
	while read -r want; do
		# shellcheck disable=SC2053 # glob match on purpose
		[[ "$f" == $want ]] && listed=1 && break
	done <"$dest/.layout"
	[ "$listed" = 1 ] || { echo "installed $f: not in README's layout"; exit 1; }
done || rc=1
[ "$rc" = 0 ] && log "make install: $(find "$dest" -type f ! -name .layout | wc -l) files, the layout README.md states"
exit "$rc"
