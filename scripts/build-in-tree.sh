#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# build-in-tree.sh: the in-tree check (make in-tree-kernel): applies the
# in-tree series (scripts/kernel-patches.sh --in-tree) to a hard-link copy of
# the pristine kernel tree ($COCO_CACHE/src-in-tree) and builds the rig's
# configuration (allnoconfig + scripts/kconfig/coco.config) plus
# CONFIG_PCI_COCO=m into $COCO_CACHE/build-in-tree: a full kernel build
# (10-12 minutes on 2 cores), so make check does not run it. Prints the
# build directory; drivers/pci/coco/coco.ko is in it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KVER=$(cat "$COCO_CACHE/ksrc-version" 2>/dev/null) || die "no kernel source in $COCO_CACHE: run scripts/setup.sh"
PRISTINE=$COCO_CACHE/linux-$KVER
SRC=$COCO_CACHE/src-in-tree
BUILD=$COCO_CACHE/build-in-tree
series=$("$COCO_ROOT/scripts/kernel-patches.sh" --in-tree --out "$COCO_CACHE/patches/in-tree")

log "applying the in-tree series to a copy of $PRISTINE"
rm -rf "$SRC"
cp -al "$PRISTINE" "$SRC"
while read -r p; do
	(cd "$SRC" && git apply "$series/$p") || die "$p does not apply"
done <"$series/series"

mkdir -p "$BUILD"
{
	cat "$COCO_ROOT/scripts/kconfig/coco.config"
	echo "CONFIG_PCI_COCO=m"
} >"$BUILD/.coco-in-tree.config"
MAKE=(make -s -C "$SRC" O="$BUILD" LLVM=-19 -j"$(nproc)")
"${MAKE[@]}" KCONFIG_ALLCONFIG="$BUILD/.coco-in-tree.config" allnoconfig >/dev/null
grep -qx 'CONFIG_PCI_COCO=m' "$BUILD/.config" || die "CONFIG_PCI_COCO=m did not reach .config"
log "building Linux $KVER with the in-tree coco in $BUILD (10-12 minutes on 2 cores)"
"${MAKE[@]}" all >"$BUILD/.coco-build.log" 2>&1 || {
	tail -n 40 "$BUILD/.coco-build.log" >&2
	die "in-tree kernel build failed (log: $BUILD/.coco-build.log)"
}
[ -f "$BUILD/drivers/pci/coco/coco.ko" ] || die "no drivers/pci/coco/coco.ko in $BUILD"
log "in-tree build ok: $BUILD/drivers/pci/coco/coco.ko"
echo "$BUILD"
