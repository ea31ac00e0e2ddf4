#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# build-modules.sh [make args...]: builds the project's kernel modules as
# external modules against the cached kernel build, with the kernel's clippy
# settings (CLIPPY=1). Objects go to $COCO_CACHE/modules, not the repository.
# COCO_KBUILD selects another kernel build directory (default $COCO_CACHE/build),
# COCO_MODULES_OUT another output directory (e.g. for a second work tree).
# Prints the output directory on stdout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KB=${COCO_KBUILD:-$COCO_CACHE/build}
[ -f "$KB/.coco-key" ] || die "no kernel build in $KB: run scripts/build-kernel.sh"
OUT=${COCO_MODULES_OUT:-$COCO_CACHE/modules${KB#"$COCO_CACHE/build"}}
mkdir -p "$OUT"
# One build at a time per output folder (concurrent rigs share it).
exec 9>"$OUT/.build.lock"
flock 9
make -s -C "$COCO_CACHE/src" O="$KB" M="$COCO_ROOT" MO="$OUT" LLVM=-19 CLIPPY=1 W=1 \
	CONFIG_PCI_COCO=m -j"$(nproc)" "$@" modules >&2 ||
	die "module build failed"
echo "$OUT"
