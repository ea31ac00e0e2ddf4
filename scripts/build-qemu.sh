#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the project's QEMU (the emulated TEE-IO platform, issue 12): Debian
# trixie's qemu source package with the series in tools/testing/qemu/patches,
# emulator only (x86_64-softmmu). Idempotent; prints the binary's path.
#
#   - adds a deb-src entry for trixie (only sources: apt never installs a
#     trixie binary from it) and installs the build dependencies (as root),
#   - `apt-get source qemu=<version>` into $COCO_CACHE/qemu-src/<version>,
#   - a work tree $COCO_CACHE/qemu-work/<version> whose applied series is
#     swapped patch by patch (reverse the old, apply the new), so that a
#     changed patch rebuilds only what it touches,
#   - the binary goes to $COCO_CACHE/qemu-<version>-<sha of series>/; when it
#     exists the script only prints its path.
#
# Environment:
#   COCO_CACHE         cache directory (default ~/.cache/coco)
#   COCO_QEMU_VERSION  Debian source version (default pinned below)
#   COCO_QEMU_JOBS     ninja -j (default: number of CPUs)
# Options:
#   --print-key        print the cache key and exit (no build, no root needed)
#   --force            rebuild even when the keyed binary exists
set -euo pipefail

. "$(dirname "$0")/lib.sh"

QEMU_VERSION=${COCO_QEMU_VERSION:-1:10.0.13+ds-0+deb13u1}
PATCH_DIR=$COCO_ROOT/tools/testing/qemu/patches
BUILD_DEPS=(ninja-build libglib2.0-dev libpixman-1-dev libfdt-dev pkg-config gcc
	dpkg-dev python3-venv patch)
BPO_DEPS=(meson python3-pycotap)
CONFIGURE_FLAGS=(
	--target-list=x86_64-softmmu --disable-download --python=/usr/bin/python3
	--without-default-features --disable-docs --disable-werror --disable-debug-info
	--enable-fdt=system --disable-rust --disable-user --disable-tools
	--disable-guest-agent --disable-xen --disable-kvm --enable-tcg
	--disable-install-blobs
)

print_key=0 force=0
for a in "$@"; do
	case "$a" in
	--print-key) print_key=1 ;;
	--force) force=1 ;;
	-h | --help)
		sed -n '3,25p' "$0"
		exit 0
		;;
	*) die "unknown option $a" ;;
	esac
done

# Version without epoch, safe for a path.
ver_path=${QEMU_VERSION#*:}
series_sha() {
	{
		printf '%s\n' "$QEMU_VERSION" "${CONFIGURE_FLAGS[*]}"
		local p
		while read -r p; do
			case "$p" in '' | '#'*) continue ;; esac
			printf '%s\n' "$p"
			cat "$PATCH_DIR/$p"
		done <"$PATCH_DIR/series"
	} | sha256sum | cut -c1-16
}
KEY="$ver_path-$(series_sha)"
OUT=$COCO_CACHE/qemu-$KEY
BIN=$OUT/qemu-system-x86_64
if [ "$print_key" = 1 ]; then
	echo "$KEY"
	exit 0
fi
if [ "$force" = 0 ] && [ -x "$BIN" ] && [ -f "$OUT/.coco-built" ]; then
	echo "$BIN"
	exit 0
fi

[ "$(id -u)" = 0 ] || die "the first QEMU build needs root (deb-src entry, build dependencies)"
mkdir -p "$COCO_CACHE"
# Never two QEMU builds at once (2-core machines).
exec 9>"$COCO_CACHE/.qemu-build.lock"
flock 9
if [ "$force" = 0 ] && [ -x "$BIN" ] && [ -f "$OUT/.coco-built" ]; then
	echo "$BIN"
	exit 0
fi

setup_apt() {
	local src=/etc/apt/sources.list.d/coco-qemu-src.sources want changed=0
	want=$(printf 'Types: deb-src\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
		"$(debian_mirror)")
	if [ "$(cat "$src" 2>/dev/null)" != "$want" ]; then
		echo "$want" >"$src"
		changed=1
	fi
	local offered
	offered=$(apt-cache showsrc qemu 2>/dev/null | awk '/^Version:/ {print $2}' || true)
	if [ "$changed" = 1 ] || ! grep -qxF "$QEMU_VERSION" <<<"$offered"; then
		log "apt-get update (deb-src trixie)"
		apt-get update -qq || die "apt-get update failed"
		offered=$(apt-cache showsrc qemu 2>/dev/null | awk '/^Version:/ {print $2}' || true)
	fi
	grep -qxF "$QEMU_VERSION" <<<"$offered" ||
		die "qemu source $QEMU_VERSION is not offered (offered: $(echo $offered))"
	local missing=() p
	for p in "${BUILD_DEPS[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	if [ "${#missing[@]}" -gt 0 ]; then
		log "installing ${missing[*]}"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			"${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
	fi
	missing=()
	for p in "${BPO_DEPS[@]}"; do
		dpkg-query -W -f='${Version}' "$p" 2>/dev/null | grep -q 'bpo12' || missing+=("$p")
	done
	if [ "${#missing[@]}" -gt 0 ]; then
		log "installing ${missing[*]} from bookworm-backports"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			-t bookworm-backports "${missing[@]}" >/dev/null ||
			die "apt-get install -t bookworm-backports ${missing[*]} failed"
	fi
}

# Pristine, unpacked source (Debian's own patches applied by dpkg-source).
fetch_source() {
	local dir=$COCO_CACHE/qemu-src/$ver_path
	if [ -f "$dir/.coco-unpacked" ]; then
		return 0
	fi
	rm -rf "$dir"
	local tmp
	tmp=$(mktemp -d "$COCO_CACHE/.qemu-fetch.XXXXXX")
	log "apt-get source qemu=$QEMU_VERSION"
	(cd "$tmp" && apt-get source -qq "qemu=$QEMU_VERSION" >/dev/null) ||
		die "apt-get source qemu=$QEMU_VERSION failed"
	local unpacked
	unpacked=$(find "$tmp" -maxdepth 1 -mindepth 1 -type d -name 'qemu-*' | head -n 1)
	[ -n "$unpacked" ] && [ -f "$unpacked/meson.build" ] || die "no unpacked qemu source in $tmp"
	# The +ds repack has no firmware blobs; Debian's own
	# skip-unpack-edk2-blobs.patch (applied by dpkg-source) already keeps
	# meson from unpacking the edk2 ones.
	grep -q 'unpack_edk2_blobs and false' "$unpacked/pc-bios/meson.build" ||
		die "qemu source: edk2 blob unpacking is not disabled (Debian's patch changed?)"
	mkdir -p "$(dirname "$dir")"
	mv "$unpacked" "$dir"
	touch "$dir/.coco-unpacked"
	rm -rf "$tmp"
}

# Bring the work tree's applied series to the wanted one.
apply_series() {
	local work=$1 applied=$1/.coco-applied
	local want=()
	local p
	while read -r p; do
		case "$p" in '' | '#'*) continue ;; esac
		[ -f "$PATCH_DIR/$p" ] || die "series names a missing patch: $p"
		want+=("$p")
	done <"$PATCH_DIR/series"
	# Keep the longest common prefix of (name, content); reverse the rest.
	local have=()
	[ -f "$applied/series" ] && mapfile -t have <"$applied/series"
	local keep=0
	while [ "$keep" -lt "${#have[@]}" ] && [ "$keep" -lt "${#want[@]}" ] &&
		[ "${have[$keep]}" = "${want[$keep]}" ] &&
		cmp -s "$applied/${have[$keep]}" "$PATCH_DIR/${want[$keep]}"; do
		keep=$((keep + 1))
	done
	local i
	for ((i = ${#have[@]} - 1; i >= keep; i--)); do
		log "qemu: reverting ${have[$i]}"
		patch -d "$work/src" -p1 -R -s -f <"$applied/${have[$i]}" || return 1
		rm -f "$applied/${have[$i]}"
		printf '%s\n' "${have[@]:0:$i}" | sed '/^$/d' >"$applied/series"
	done
	for ((i = keep; i < ${#want[@]}; i++)); do
		log "qemu: applying ${want[$i]}"
		patch -d "$work/src" -p1 -s -f --no-backup-if-mismatch <"$PATCH_DIR/${want[$i]}" || return 1
		cp "$PATCH_DIR/${want[$i]}" "$applied/${want[$i]}"
		printf '%s\n' "${want[@]:0:$((i + 1))}" >"$applied/series"
	done
}

prepare_work() {
	local work=$COCO_CACHE/qemu-work/$ver_path
	if [ ! -f "$work/.coco-ready" ] || ! apply_series "$work"; then
		log "qemu: fresh work tree $work"
		rm -rf "$work"
		mkdir -p "$work/.coco-applied"
		cp -a "$COCO_CACHE/qemu-src/$ver_path" "$work/src"
		: >"$work/.coco-applied/series"
		touch "$work/.coco-ready"
		apply_series "$work" || die "the patch series does not apply to qemu $QEMU_VERSION"
	fi
	echo "$work"
}

build() {
	local work=$1 jobs=${COCO_QEMU_JOBS:-$(nproc)}
	local flags_stamp="$work/build/.coco-configure"
	if [ ! -f "$work/build/build.ninja" ] || [ "$(cat "$flags_stamp" 2>/dev/null)" != "${CONFIGURE_FLAGS[*]}" ]; then
		log "qemu: configure"
		rm -rf "$work/build"
		mkdir -p "$work/build"
		(cd "$work/build" && ../src/configure "${CONFIGURE_FLAGS[@]}" >configure.log 2>&1) ||
			die "qemu configure failed: see $work/build/configure.log"
		echo "${CONFIGURE_FLAGS[*]}" >"$flags_stamp"
	fi
	log "qemu: building (ninja -j$jobs; the first build takes about 6 min on 2 cores)"
	nice ninja -C "$work/build" -j"$jobs" qemu-system-x86_64 >"$work/build/ninja.log" 2>&1 ||
		{
			tail -n 40 "$work/build/ninja.log" >&2
			die "qemu build failed: see $work/build/ninja.log"
		}
}

setup_apt
fetch_source
work=$(prepare_work)
build "$work"
rm -rf "$OUT.tmp"
mkdir -p "$OUT.tmp"
cp "$work/build/qemu-system-x86_64" "$OUT.tmp/"
cp "$PATCH_DIR/series" "$OUT.tmp/series"
echo "$QEMU_VERSION" >"$OUT.tmp/version"
touch "$OUT.tmp/.coco-built"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
# Keep the three newest builds.
ls -dt "$COCO_CACHE"/qemu-"$ver_path"-* 2>/dev/null | grep -v '\.tmp$' | tail -n +4 | xargs -r rm -rf
log "qemu: built $BIN"
echo "$BIN"
