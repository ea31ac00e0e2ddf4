#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Build (or reuse) the rig's kernel: Linux 7.3.x with LLVM=-19 from allnoconfig +
# scripts/kconfig/coco.config, with the project's kernel-crate additions
# (rust/kernel-overlay/*.patch) applied onto a copy of the cached source tree.
#
# The build is cached under $COCO_CACHE and keyed by the kernel version, the
# fragment, the overlay patches and the toolchain versions: when none of them
# changed, nothing runs. Prints the build directory on stdout.
#
# COCO_KVARIANT=nodebug builds the same kernel without the fragment's debug
# section (KASAN, lockdep, kmemleak, ...) into its own directory, for
# measuring what the debug options cost (make bench).
set -euo pipefail

. "$(dirname "$0")/lib.sh"

FRAGMENT=$COCO_ROOT/scripts/kconfig/coco.config
VARIANT=${COCO_KVARIANT:-debug}
OVERLAY_DIR=$COCO_ROOT/rust/kernel-overlay
KVER=$(cat "$COCO_CACHE/ksrc-version" 2>/dev/null) ||
	die "no kernel source in $COCO_CACHE: run scripts/setup.sh"
PRISTINE=$COCO_CACHE/linux-$KVER
SRC=$COCO_CACHE/src
BUILD=$COCO_CACHE/build
case "$VARIANT" in
debug) ;;
nodebug)
	BUILD=$COCO_CACHE/build-nodebug
	mkdir -p "$COCO_CACHE"
	sed '/^# Debug options/,$d' "$FRAGMENT" >"$COCO_CACHE/coco-nodebug.config"
	FRAGMENT=$COCO_CACHE/coco-nodebug.config
	;;
*) die "unknown COCO_KVARIANT $VARIANT (debug or nodebug)" ;;
esac
MAKE=(make -s -C "$SRC" O="$BUILD" LLVM=-19 -j"$(nproc)")
# The debug kernel checks the alignment of every access of the DOE core (UBSAN, see the
# fragment): a DOE buffer handed to pci_doe() that is not dword-aligned is reported.
EXTRA=()
[ "$VARIANT" = debug ] && EXTRA=(CFLAGS_doe.o=-fsanitize=alignment)

overlay_hash() {
	{
		echo "$KVER"
		cat "$OVERLAY_DIR"/*.patch
	} | sha256sum | cut -c1-16
}

build_key() {
	{
		overlay_hash
		cat "$FRAGMENT"
		echo "${EXTRA[*]}"
		rustc --version
		clang-19 --version | head -n 1
		bindgen --version
	} | sha256sum | cut -c1-16
}

# A hard-link copy of the pristine tree with the overlay applied. Patching
# breaks the links of the files it touches, so the pristine tree stays intact.
prepare_source() {
	local want
	want=$(overlay_hash)
	[ "$(cat "$SRC/.coco-overlay" 2>/dev/null)" = "$want" ] && return 0
	log "preparing kernel source with the overlay ($want)"
	rm -rf "$SRC"
	cp -al "$PRISTINE" "$SRC"
	local p
	for p in "$OVERLAY_DIR"/*.patch; do
		patch -s -p1 -d "$SRC" --no-backup-if-mismatch <"$p" ||
			die "overlay patch $(basename "$p") does not apply to $KVER"
	done
	echo "$want" >"$SRC/.coco-overlay"
}

check_fragment() {
	local line sym val missing=0
	while IFS= read -r line; do
		case "$line" in '' | '#'*) continue ;; esac
		sym=${line%%=*}
		val=${line#*=}
		if [ "$val" = n ]; then
			grep -qx "# $sym is not set" "$BUILD/.config" ||
				! grep -q "^$sym=" "$BUILD/.config" || {
				warn "$sym=n did not reach .config"
				missing=1
			}
		elif ! grep -qx "$line" "$BUILD/.config"; then
			warn "$line did not reach .config (got: $(grep "^$sym=\|# $sym " "$BUILD/.config" || echo unset))"
			missing=1
		fi
	done <"$FRAGMENT"
	[ "$missing" = 0 ] || die "kernel config fragment lines were dropped (unmet dependencies?)"
}

# One build at a time per cache: a second rig or check waits here instead of
# building into the same folder (two builds there corrupt each other).
mkdir -p "$COCO_CACHE"
exec 9>"$COCO_CACHE/.build-kernel-$VARIANT.lock"
flock 9

key=$(build_key)
if [ "$(cat "$BUILD/.coco-key" 2>/dev/null)" = "$key" ] && [ -f "$BUILD/arch/x86/boot/bzImage" ]; then
	echo "$BUILD"
	exit 0
fi

prepare_source
mkdir -p "$BUILD"
"${MAKE[@]}" rustavailable >/dev/null || die "the Rust toolchain is not usable for the kernel (make rustavailable)"
"${MAKE[@]}" KCONFIG_ALLCONFIG="$FRAGMENT" allnoconfig >/dev/null
check_fragment
log "building Linux $KVER in $BUILD (about 10-12 minutes cold on 2 cores)"
start=$(date +%s)
"${MAKE[@]}" "${EXTRA[@]}" all >"$BUILD/.coco-build.log" 2>&1 || {
	tail -n 40 "$BUILD/.coco-build.log" >&2
	die "kernel build failed (log: $BUILD/.coco-build.log)"
}
log "kernel built in $(($(date +%s) - start)) s"
echo "$key" >"$BUILD/.coco-key"
echo "$BUILD"
