# SPDX-License-Identifier: GPL-2.0
# coco: top-level targets. The kernel build is cached outside the repository
# ($COCO_CACHE, default ~/.cache/coco); see README.md.
#
# Without KDIR, `make` builds the rig's kernel and coco.ko against it. With
# KDIR=<kernel build tree> (the tree's O= directory, or
# /lib/modules/<release>/build), `make` builds coco.ko against that kernel,
# which must carry the kernel-crate additions (`make kernel-patches`); pass the
# toolchain variables the kernel was built with (e.g. LLVM=1 or LLVM=-19).
#
#   make [KDIR=...] [MO=<objects dir>]      build coco.ko
#   make install [KDIR=...] [INSTALL_MOD_PATH=...] [INSTALL_MOD_DIR=updates]
#                [DESTDIR=...] [SBINDIR=/usr/sbin] [UDEVRULESDIR=/usr/lib/udev/rules.d]
#                [TRUSTDIR=/etc/coco/trust]
#       modules_install (modules under $INSTALL_MOD_PATH/lib/modules/<release>/
#       $INSTALL_MOD_DIR/, depmod) plus the trust-anchor loader, its udev rule
#       and the trust directory under $DESTDIR (install-trust alone: only those)
#   make kernel-patches [O=dir] [KSRC=dir]  the overlay as a git-format-patch series
#   make in-tree-patches [O=dir] [KSRC=dir] ... plus drivers/pci/coco as patches
#   make check-patches                      both series apply to the pristine tree
#   make kernel-options [KSRC=dir]          kernel options coco.ko needs
#   make in-tree-kernel                     build the rig's kernel with the in-tree
#                                           series and CONFIG_PCI_COCO=m (slow)

COCO_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/coco
KDIR ?=
DESTDIR ?=
SBINDIR ?= /usr/sbin
UDEVRULESDIR ?= /usr/lib/udev/rules.d
TRUSTDIR ?= /etc/coco/trust
INSTALL ?= install

# O= names the patch output directory here; it must not reach the kernel's make.
override MAKEOVERRIDES := $(filter-out O=%,$(MAKEOVERRIDES))
unexport O
PATCH_ARGS = $(if $(O),--out $(O)) $(if $(KSRC),--ksrc $(KSRC))

.PHONY: all setup kernel modules endpoint rig check bench clean install modules_install \
	install-trust kernel-patches in-tree-patches check-patches kernel-options in-tree-kernel

ifneq ($(KDIR),)
all: modules

modules:
	$(MAKE) -C $(KDIR) M=$(CURDIR) CONFIG_PCI_COCO=m modules

modules_install:
	$(MAKE) -C $(KDIR) M=$(CURDIR) CONFIG_PCI_COCO=m modules_install
else
all: modules endpoint

modules: kernel
	scripts/build-modules.sh >/dev/null

# The rig's build: objects in $(COCO_CACHE)/modules (scripts/build-modules.sh).
modules_install: modules
	$(MAKE) -C $(COCO_CACHE)/build M=$(CURDIR) MO=$(COCO_CACHE)/modules LLVM=-19 \
		CONFIG_PCI_COCO=m modules_install
endif

install: modules_install install-trust

install-trust:
	$(INSTALL) -D -m 755 tools/coco-trust/coco-trust-sync $(DESTDIR)$(SBINDIR)/coco-trust-sync
	$(INSTALL) -d -m 755 $(DESTDIR)$(UDEVRULESDIR)
	sed 's|/usr/sbin/coco-trust-sync|$(SBINDIR)/coco-trust-sync$(if $(filter-out /etc/coco/trust,$(TRUSTDIR)), --dir $(TRUSTDIR))|' \
		tools/coco-trust/90-coco-trust.rules >$(DESTDIR)$(UDEVRULESDIR)/90-coco-trust.rules
	chmod 644 $(DESTDIR)$(UDEVRULESDIR)/90-coco-trust.rules
	$(INSTALL) -d -m 755 $(DESTDIR)$(TRUSTDIR)

setup:
	scripts/setup.sh

kernel:
	scripts/build-kernel.sh

endpoint:
	cargo build --release -p coco-endpoint -p coco-psp

rig:
	scripts/qemu-run.sh

check:
	scripts/check.sh

bench:
	scripts/bench.sh

kernel-patches:
	scripts/kernel-patches.sh $(PATCH_ARGS)

in-tree-patches:
	scripts/kernel-patches.sh --in-tree $(PATCH_ARGS)

check-patches:
	scripts/kernel-patches.sh --check $(if $(KSRC),--ksrc $(KSRC))
	scripts/kernel-patches.sh --check --in-tree $(if $(KSRC),--ksrc $(KSRC))

kernel-options:
	scripts/kernel-options.sh $(if $(KSRC),--ksrc $(KSRC))

in-tree-kernel:
	scripts/build-in-tree.sh

clean:
	cargo clean
	rm -rf "$${COCO_CACHE:-$${XDG_CACHE_HOME:-$$HOME/.cache}/coco}/modules"
