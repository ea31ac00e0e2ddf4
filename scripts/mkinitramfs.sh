#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# mkinitramfs.sh OUT MODULE_DIR KSRC: builds the rig's base initramfs
# (busybox, keyctl and openssl with their libraries, coco.ko, the trust-anchor
# loader and its udev rule installed as `make install` does, the kselftests and
# the kernel's KTAP helpers) as a gzip'd
# newc cpio at OUT. The per-run configuration is a second archive appended by
# qemu-run.sh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

out=$1 moddir=$2 ksrc=$3
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,coco,lib/modules,kselftest/coco,kselftest/kselftest}
cp /bin/busybox "$stage/bin/busybox"

# Dynamically linked tools, with the shared objects they load (as ldd lists
# them, resolved to their real files): keyctl loads trust anchors into the
# .coco keyring, openssl parses the certificates the kernel exports, and the
# project's coco-verify (COCO_VERIFY_BIN) re-checks signed measurements.
for tool in keyctl openssl ${COCO_VERIFY_BIN:+"$COCO_VERIFY_BIN"}; do
	bin=$(command -v "$tool") || die "$tool not found (scripts/setup.sh installs it)"
	cp -L "$bin" "$stage/usr/bin/${tool##*/}"
	ldd "$bin" | awk '/=>/ { print $3 } !/=>/ && $1 ~ /^\// { print $1 }' |
		while read -r lib; do
			[ -e "$lib" ] || continue
			mkdir -p "$stage$(dirname "$lib")"
			cp -L "$lib" "$stage$lib"
		done
done
cp "$COCO_ROOT/scripts/guest/init" "$stage/init"
chmod 755 "$stage/init"
# The trust anchors' loader, its udev rule and directory, where `make install`
# puts them; busybox has no udev: udev-run runs what a rule would run.
install -D -m 755 "$COCO_ROOT/tools/coco-trust/coco-trust-sync" "$stage/usr/sbin/coco-trust-sync"
install -D -m 644 "$COCO_ROOT/tools/coco-trust/90-coco-trust.rules" \
	"$stage/usr/lib/udev/rules.d/90-coco-trust.rules"
install -D -m 755 "$COCO_ROOT/scripts/guest/udev-run" "$stage/usr/sbin/udev-run"
mkdir -p "$stage/etc/coco/trust"
find "$moddir" -name '*.ko' -exec cp {} "$stage/lib/modules/" \;
[ -f "$stage/lib/modules/coco.ko" ] || die "coco.ko not found in $moddir"

sel=$COCO_ROOT/tools/testing/selftests/coco
cp "$ksrc/tools/testing/selftests/kselftest/ktap_helpers.sh" "$stage/kselftest/kselftest/"
if [ -d "$sel" ]; then
	cp -r "$sel"/. "$stage/kselftest/coco/"
	# The run order is TEST_PROGS in the kselftest Makefile.
	awk '/^TEST_PROGS[ \t]*[:+]?=/ { sub(/^TEST_PROGS[ \t]*[:+]?=/, ""); on = 1 }
		on { c = sub(/\\$/, ""); printf "%s ", $0; if (!c) on = 0 }' \
		"$sel/Makefile" | tr -s ' \t' '\n' | sed '/^$/d' >"$stage/kselftest/coco/order"
	[ -s "$stage/kselftest/coco/order" ] || die "no TEST_PROGS in $sel/Makefile"
fi
(cd "$stage" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) >"$out.tmp"
mv "$out.tmp" "$out"
