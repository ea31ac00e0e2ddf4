# SPDX-License-Identifier: GPL-2.0
# coco: top-level targets. The kernel build is cached outside the repository
# ($COCO_CACHE, default ~/.cache/coco); see README.md.

.PHONY: all setup kernel modules endpoint rig check bench clean

all: modules endpoint

setup:
	scripts/setup.sh

kernel:
	scripts/build-kernel.sh

modules: kernel
	scripts/build-modules.sh

endpoint:
	cargo build --release -p coco-endpoint

rig:
	scripts/qemu-run.sh

check:
	scripts/check.sh

bench:
	scripts/bench.sh

clean:
	cargo clean
	rm -rf "$${COCO_CACHE:-$${XDG_CACHE_HOME:-$$HOME/.cache}/coco}/modules"
