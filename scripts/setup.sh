#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Idempotent host setup for the coco rig (Debian 12, as root):
#   - apt suites bookworm-backports (qemu-system-x86 10.0) and trixie-backports
#     (linux-source-7.3, only downloaded and unpacked, never installed),
#   - the LLVM 19 toolchain and the kernel build dependencies,
#   - rust-src and a pinned bindgen-cli,
#   - the Linux 7.3.x source tree, unpacked into the cache directory.
#
# Environment:
#   COCO_CACHE   cache directory (default: ${XDG_CACHE_HOME:-$HOME/.cache}/coco)
#   COCO_KVER    wanted linux-source-7.3 package version (default: pinned below,
#                falling back to the newest 7.3.x the suite offers)
set -euo pipefail

. "$(dirname "$0")/lib.sh"

BINDGEN_VERSION=0.73.2
PINNED_KSRC_VERSION=${COCO_KVER:-7.3.4-1~bpo13+1}

APT_PACKAGES=(
	clang-19 lld-19 llvm-19 libclang-19-dev
	flex bison bc libelf-dev libssl-dev cpio kmod busybox-static
	make gcc python3 xz-utils openssl socat keyutils
)
BACKPORT_PACKAGES=(qemu-system-x86)

need_root() {
	[ "$(id -u)" = 0 ] || die "setup must run as root (it installs packages)"
}

add_suites() {
	local src=/etc/apt/sources.list.d/coco-backports.sources mirror
	mirror=$(debian_mirror)
	local want
	want=$(cat <<SRC
Types: deb
URIs: $mirror
Suites: bookworm-backports trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
)
	# trixie-backports is only a source for `apt-get download`: never let apt
	# pick a trixie binary for this bookworm system.
	local pin=/etc/apt/preferences.d/coco-trixie-backports
	local wantpin
	wantpin=$(printf 'Package: *\nPin: release n=trixie-backports\nPin-Priority: -10\n')
	local changed=0
	if [ "$(cat "$src" 2>/dev/null)" != "$want" ]; then
		echo "$want" >"$src"
		changed=1
	fi
	if [ "$(cat "$pin" 2>/dev/null)" != "$wantpin" ]; then
		echo "$wantpin" >"$pin"
		changed=1
	fi
	local stamp=/var/lib/apt/lists/.coco-updated
	if [ "$changed" = 1 ] || [ ! -e "$stamp" ] ||
		[ -n "$(find "$stamp" -mmin +1440 2>/dev/null)" ]; then
		log "apt-get update (suites: bookworm-backports, trixie-backports)"
		apt-get update -qq || die "apt-get update failed: is the Debian mirror reachable?"
		apt-cache policy 2>/dev/null | grep -q 'bookworm-backports' ||
			die "suite bookworm-backports is not reachable"
		apt-cache policy 2>/dev/null | grep -q 'trixie-backports' ||
			die "suite trixie-backports is not reachable"
		touch "$stamp"
	fi
}

install_packages() {
	local missing=() p
	for p in "${APT_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	if [ "${#missing[@]}" -gt 0 ]; then
		log "installing ${missing[*]}"
		for p in "${missing[@]}"; do
			apt-cache show "$p" >/dev/null 2>&1 || die "package $p is not available from apt"
		done
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			"${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
	fi
	local qv
	qv=$(dpkg-query -W -f='${Version}' qemu-system-x86 2>/dev/null || true)
	case "$qv" in
	*bpo12*) ;;
	*)
		log "installing ${BACKPORT_PACKAGES[*]} from bookworm-backports"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			-t bookworm-backports "${BACKPORT_PACKAGES[@]}" >/dev/null ||
			die "apt-get install -t bookworm-backports ${BACKPORT_PACKAGES[*]} failed"
		;;
	esac
}

install_rust_tools() {
	command -v cargo >/dev/null || die "cargo not found: install Rust with rustup first"
	if ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
		log "rustup component add rust-src"
		rustup component add rust-src >/dev/null || die "rustup component add rust-src failed"
	fi
	if ! bindgen --version 2>/dev/null | grep -q " $BINDGEN_VERSION\$"; then
		log "cargo install bindgen-cli $BINDGEN_VERSION (takes a few minutes)"
		cargo install --locked --quiet --version "$BINDGEN_VERSION" bindgen-cli ||
			die "cargo install bindgen-cli failed"
	fi
}

# Unpack linux-source-7.3 into $COCO_CACHE/linux-<version>.
fetch_kernel_source() {
	mkdir -p "$COCO_CACHE"
	if [ -e "$COCO_CACHE/ksrc-version" ] &&
		[ -f "$COCO_CACHE/linux-$(cat "$COCO_CACHE/ksrc-version")/.coco-unpacked" ]; then
		return 0
	fi
	local ver="$PINNED_KSRC_VERSION" avail
	avail=$(apt-cache madison linux-source-7.3 2>/dev/null | awk -F'|' '/trixie-backports/ {gsub(/ /,"",$2); print $2}')
	[ -n "$avail" ] || die "linux-source-7.3 is not offered by trixie-backports"
	if ! grep -qxF "$ver" <<<"$avail"; then
		local newest
		newest=$(sort -V <<<"$avail" | tail -n 1)
		warn "linux-source-7.3 $ver not offered; using the newest: $newest"
		ver=$newest
	fi
	local tmp
	tmp=$(mktemp -d "$COCO_CACHE/.fetch.XXXXXX")
	log "downloading linux-source-7.3=$ver"
	(cd "$tmp" && apt-get download -qq "linux-source-7.3=$ver") ||
		die "apt-get download linux-source-7.3=$ver failed"
	dpkg-deb -x "$tmp"/linux-source-7.3_*.deb "$tmp/deb"
	local tarball
	tarball=$(ls "$tmp"/deb/usr/src/linux-source-7.3*.tar.* | head -n 1)
	[ -f "$tarball" ] || die "no kernel tarball inside linux-source-7.3"
	local dir="$COCO_CACHE/linux-$ver"
	rm -rf "$dir"
	mkdir -p "$dir"
	log "unpacking $(basename "$tarball")"
	tar -xf "$tarball" -C "$dir" --strip-components=1
	touch "$dir/.coco-unpacked"
	echo "$ver" >"$COCO_CACHE/ksrc-version"
	rm -rf "$tmp"
}

need_root
add_suites
install_packages
install_rust_tools
fetch_kernel_source
log "setup ok: kernel source $(cat "$COCO_CACHE/ksrc-version") in $COCO_CACHE"
