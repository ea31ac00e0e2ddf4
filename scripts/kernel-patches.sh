#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# kernel-patches.sh [--in-tree] [--out DIR] [--ksrc DIR]
#   Exports the kernel-crate additions (rust/kernel-overlay/*.patch) as a
#   numbered git-format-patch series (From, Subject: [PATCH n/N], body, diff
#   with index lines) that applies with `git am` or `patch -p1` to a pristine
#   Linux tree, plus a quilt-style `series` file. With --in-tree the series
#   goes on with generated patches that add coco.ko to the tree as
#   drivers/pci/coco/ (the protocol sources it includes with #[path] copied
#   next to it and the attributes rewritten), with its hooks in
#   drivers/pci/Kconfig and drivers/pci/Makefile. Prints the output directory.
#
#   --out DIR   output directory, emptied first (default
#               $COCO_CACHE/patches/kernel or $COCO_CACHE/patches/in-tree)
#   --ksrc DIR  pristine kernel tree the series is made against (default the
#               rig's, $COCO_CACHE/linux-$(cat $COCO_CACHE/ksrc-version))
#
# kernel-patches.sh --check [--in-tree] [--ksrc DIR] [--modules] [--kconfig]
#   Exports the series to a scratch directory and applies it, patch by patch
#   with `git apply` (no fuzz), to a hard-link copy of the pristine tree;
#   --modules (with --in-tree) then builds the applied tree's drivers/pci/coco
#   as an external module against the rig's kernel build; --kconfig (with
#   --in-tree) configures the applied tree (allnoconfig + only what
#   PCI_COCO depends on + PCI_COCO=m) and checks that PCI_COCO stays m and
#   that what coco.ko needs (the crypto, keys and DOE options of the rig's
#   kernel, and what the entry selects) is enabled.
#
# Authors and dates come from the project's git history (the last commit of
# each overlay patch), so the export is reproducible.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

intree=0 check=0 modules=0 kconfig=0 out="" ksrc=""
while [ $# -gt 0 ]; do
	case "$1" in
	--in-tree) intree=1; shift ;;
	--check) check=1; shift ;;
	--modules) modules=1; shift ;;
	--kconfig) kconfig=1; shift ;;
	--out) out=$2; shift 2 ;;
	--ksrc) ksrc=$2; shift 2 ;;
	-h | --help) sed -n '3,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown option $1 (see --help)" ;;
	esac
done
if [ -z "$ksrc" ]; then
	kver=$(cat "$COCO_CACHE/ksrc-version" 2>/dev/null) ||
		die "no pristine kernel tree: pass --ksrc DIR (or KSRC=DIR to make), or run scripts/setup.sh"
	ksrc=$COCO_CACHE/linux-$kver
fi
[ -f "$ksrc/Makefile" ] && [ -d "$ksrc/drivers/pci" ] || die "$ksrc is not a kernel source tree"
ksrc=$(cd "$ksrc" && pwd)
OVERLAY=$COCO_ROOT/rust/kernel-overlay
DOC=$COCO_ROOT/Documentation/coco/kernel-additions.rst

scratch=$(mktemp -d "${TMPDIR:-/tmp}/coco-patches.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

if [ "$check" = 1 ]; then
	out=$scratch/series
elif [ -z "$out" ]; then
	out=$COCO_CACHE/patches/$([ "$intree" = 1 ] && echo in-tree || echo kernel)
fi

# ------------------------------------------------------------ the series
repo=$scratch/repo
mkdir -p "$repo"
git_() { git -C "$repo" -c core.autocrlf=false -c commit.gpgsign=false "$@"; }
git_ init -q

# Who and when: from the project's history, else a fixed placeholder.
who() { # FILE -> "name|email|date"
	local w
	w=$(git -C "$COCO_ROOT" log -1 --format='%an|%ae|%aD' -- "$1" 2>/dev/null || true)
	echo "${w:-The coco developers|coco@localhost|Thu, 1 Jan 2026 00:00:00 +0000}"
}
commit() { # WHO-FILE MESSAGE-FILE
	local w name email date
	w=$(who "$1")
	name=${w%%|*} w=${w#*|} email=${w%%|*} date=${w#*|}
	git_ add -A
	GIT_AUTHOR_NAME=$name GIT_AUTHOR_EMAIL=$email GIT_AUTHOR_DATE=$date \
		GIT_COMMITTER_NAME=$name GIT_COMMITTER_EMAIL=$email GIT_COMMITTER_DATE=$date \
		git_ commit -q --allow-empty-message -F "$2"
}

# The base: the pristine versions of every file the series touches.
{
	sed -n 's|^+++ b/\([^\t ]*\).*|\1|p' "$OVERLAY"/*.patch
	echo drivers/pci/Kconfig
	echo drivers/pci/Makefile
} | sort -u | while read -r f; do
	[ -f "$ksrc/$f" ] || continue
	mkdir -p "$repo/$(dirname "$f")"
	cp -p "$ksrc/$f" "$repo/$f"
done
printf 'base\n' >"$scratch/msg"
GIT_AUTHOR_DATE="@0 +0000" GIT_COMMITTER_DATE="@0 +0000" \
	git_ -c user.name=base -c user.email=base@localhost add -A
GIT_AUTHOR_DATE="@0 +0000" GIT_COMMITTER_DATE="@0 +0000" \
	git_ -c user.name=base -c user.email=base@localhost commit -q -F "$scratch/msg"

# The message of an overlay patch: its own header (subject line, blank line,
# body) when it has one; otherwise a subject made from the file name
# ("0001-rust-pci-add-X" -> "rust: pci: add X") and the patch's entry in
# Documentation/coco/kernel-additions.rst as the body.
message() {
	local p=$1 base subj
	base=$(basename "$p" .patch)
	if ! head -n 1 "$p" | grep -qE '^(diff |--- |Index: )'; then
		awk '/^(diff |--- |Index: )/ { exit } { print }' "$p"
		return
	fi
	subj=$(echo "${base#[0-9][0-9][0-9][0-9]-}" | awk -F- '{
		out = ""; prefix = 1
		for (i = 1; i <= NF; i++) {
			if (prefix && $i ~ /^(add|fix|use|drop|remove|make|move|export|introduce|implement|wrap|support)$/) prefix = 0
			if (prefix && i < NF) out = out $i ": "
			else out = out $i (i < NF ? " " : "")
		}
		print out }')
	echo "$subj"
	echo
	if [ -f "$DOC" ] && grep -q "$base.patch" "$DOC"; then
		awk -v f="\`\`$base.patch\`\`:" '
			index($0, f) { on = 1; sub(/^.*``:[ ]*/, ""); print; next }
			on && (/^\* / || /^$/) { exit }
			on { sub(/^[ ]+/, ""); print }' "$DOC" | sed 's/``//g' | fmt -w 72
	fi
}

for p in "$OVERLAY"/*.patch; do
	patch -s -p1 -F0 -d "$repo" --no-backup-if-mismatch <"$p" >"$scratch/patch.log" 2>&1 ||
		{ cat "$scratch/patch.log" >&2; die "$(basename "$p") does not apply cleanly to $ksrc"; }
	message "$p" >"$scratch/msg"
	commit "$p" "$scratch/msg"
done

if [ "$intree" = 1 ]; then
	coco=drivers/pci/coco
	# The protocol sources coco.ko includes with #[path = "..."] from outside
	# drivers/pci/coco: rust/<crate>/src/<file> becomes drivers/pci/coco/<crate>/<file>,
	# and the attribute is rewritten relative to where it is (a crate root or
	# mod.rs: its directory; another file a/b.rs: a/b/).
	: >"$scratch/pathmap"
	grep -rlE --include='*.rs' '#\[path = "' "$COCO_ROOT/$coco" | sort >"$scratch/pathfiles" || true
	[ -s "$scratch/pathfiles" ] || die "no #[path] attribute in $coco: nothing to carry"
	while read -r file; do
		stem=$(basename "$file" .rs)
		if [ "$stem" = mod ] || grep -qw "$stem.o" "$COCO_ROOT/$coco/Kbuild"; then
			base=$(dirname "$file")
		else
			base=$(dirname "$file")/$stem
		fi
		grep -o '#\[path = "[^"]*"\]' "$file" | sed 's/^#\[path = "\(.*\)"\]$/\1/' | sort -u |
			while read -r rel; do
				src=$(realpath -m "$base/$rel")
				case "$src" in
				"$COCO_ROOT/$coco"/*) continue ;; # inside the module: carried as it is
				"$COCO_ROOT"/rust/*/src/*.rs) ;;
				*) die "#[path = \"$rel\"] in ${file#"$COCO_ROOT"/} does not name rust/<crate>/src/<file>.rs" ;;
				esac
				[ -f "$src" ] || die "$src (#[path] in ${file#"$COCO_ROOT"/}) does not exist"
				r=${src#"$COCO_ROOT"/rust/}
				dst=$coco/${r%%/*}/${r##*/}
				mkdir -p "$repo/$(dirname "$dst")"
				cp "$src" "$repo/$dst"
				newrel=$(realpath -m --relative-to="$repo/${base#"$COCO_ROOT"/}" "$repo/$dst")
				echo "${file#"$COCO_ROOT"/} $rel $newrel" >>"$scratch/pathmap"
			done
	done <"$scratch/pathfiles"
	cat >"$scratch/msg" <<-EOF
		PCI/coco: add the SPDM and DOE protocol code

		The requester side of CMA/SPDM (DSP0274, DSP0277: version, capabilities,
		algorithms, certificates, challenge, measurements, secure sessions) and
		the DOE framing, as no_std, allocation-free and unsafe-free Rust. coco.ko
		includes these files as modules of its crate; out of tree they are also
		the project's cargo crates (rust/spdm, rust/doe), tested on the host with
		unit tests, proptest and cargo-fuzz.
	EOF
	commit "$COCO_ROOT/rust/spdm/src" "$scratch/msg"

	# The module's sources: the files git knows (tracked or new), not build output.
	files=$(git -C "$COCO_ROOT" ls-files --cached --others --exclude-standard -- "$coco" 2>/dev/null || true)
	[ -n "$files" ] || files=$(cd "$COCO_ROOT" && find "$coco" -maxdepth 1 -type f \
		\( -name '*.rs' -o -name '*.c' -o -name '*.h' -o -name Kbuild -o -name Kconfig -o -name Makefile \))
	for f in $files; do
		[ -f "$COCO_ROOT/$f" ] || continue
		mkdir -p "$repo/$(dirname "$f")"
		cp "$COCO_ROOT/$f" "$repo/$f"
	done
	while read -r file rel newrel; do
		sed -i "s|#\[path = \"$rel\"\]|#[path = \"$newrel\"]|" "$repo/$file"
	done <"$scratch/pathmap"
	# The hooks: the source line of the project's top-level Kconfig after the
	# last "source" of drivers/pci/Kconfig; the directory in drivers/pci/Makefile.
	src_line=$(grep -m1 '^source "drivers/pci/coco/Kconfig"' "$COCO_ROOT/Kconfig")
	awk -v add="$src_line" '{ l[NR] = $0 } /^source "drivers\/pci\// { last = NR }
		END { for (i = 1; i <= NR; i++) { print l[i]; if (i == last) print add } }' \
		"$repo/drivers/pci/Kconfig" >"$scratch/k" && mv "$scratch/k" "$repo/drivers/pci/Kconfig"
	grep -qF "$src_line" "$repo/drivers/pci/Kconfig" || die "cannot hook drivers/pci/Kconfig"
	awk '{ print } /^obj-\$\(CONFIG_PCI_TSM\)/ { print "obj-$(CONFIG_PCI_COCO)\t\t+= coco/"; done = 1 }
		END { if (!done) print "obj-$(CONFIG_PCI_COCO)\t\t+= coco/" }' \
		"$repo/drivers/pci/Makefile" >"$scratch/m" && mv "$scratch/m" "$repo/drivers/pci/Makefile"
	cat >"$scratch/msg" <<-EOF
		PCI/coco: add coco, a CMA/SPDM device security core

		coco.ko keeps per-device state for every PCI function with a CMA/SPDM
		DOE mailbox, authenticates it (certificate chain validated with the
		kernel's X.509 parser and rooted in the .coco keyring, CHALLENGE
		verified with the kernel's crypto), reads its signed measurements, opens
		an SPDM secure session, and exposes the results in sysfs
		(Documentation/ABI/testing/sysfs-bus-pci-coco in the coco project).

		Built when CONFIG_PCI_COCO is set (tristate, depends on PCI and RUST).
	EOF
	commit "$COCO_ROOT/$coco" "$scratch/msg"
fi

rm -rf "$out"
mkdir -p "$out"
git_ format-patch -q --numbered --no-signature --full-index -o "$out" "$(git_ rev-list --max-parents=0 HEAD)..HEAD"
(cd "$out" && ls -- *.patch) >"$out/series"

if [ "$check" = 0 ]; then
	log "$(wc -l <"$out/series") patches in $out (git am $out/*.patch, or patch -p1 in the order of $out/series)"
	echo "$out"
	exit 0
fi

# ------------------------------------------------------------ --check
tree=$scratch/tree
cp -al "$ksrc" "$tree"
n=0
while read -r p; do
	# git apply writes new files (hard links to the pristine tree stay intact).
	if ! (cd "$tree" && git apply --whitespace=nowarn "$out/$p") 2>"$scratch/apply.log"; then
		cat "$scratch/apply.log" >&2
		die "$p does not apply to $ksrc"
	fi
	n=$((n + 1))
done <"$out/series"
log "all $n patches of the $([ "$intree" = 1 ] && echo in-tree || echo kernel) series apply to $ksrc"
if [ "$modules" = 1 ] && [ "$intree" = 1 ]; then
	KB=${COCO_KBUILD:-$COCO_CACHE/build}
	[ -f "$KB/.coco-key" ] || die "no kernel build in $KB: run scripts/build-kernel.sh"
	make -s -C "$COCO_CACHE/src" O="$KB" M="$tree/drivers/pci/coco" MO="$scratch/mo" LLVM=-19 \
		CONFIG_PCI_COCO=m -j"$(nproc)" modules >&2 || die "the in-tree drivers/pci/coco does not build"
	[ -f "$scratch/mo/coco.ko" ] || die "the in-tree drivers/pci/coco built no coco.ko"
	log "the series' drivers/pci/coco builds coco.ko against $KB"
fi
if [ "$kconfig" = 1 ] && [ "$intree" = 1 ]; then
	# A configuration with nothing but what the entry depends on: whatever
	# coco.ko needs beyond that must come from its own selects.
	cat >"$scratch/coco.fragment" <<-EOF
		CONFIG_64BIT=y
		CONFIG_MODULES=y
		CONFIG_PCI=y
		CONFIG_RUST=y
		CONFIG_KEYS=y
		CONFIG_CRYPTO=y
		CONFIG_ASYMMETRIC_KEY_TYPE=y
		CONFIG_ASYMMETRIC_PUBLIC_KEY_SUBTYPE=y
		CONFIG_X509_CERTIFICATE_PARSER=y
		CONFIG_PCI_COCO=m
	EOF
	make -s -C "$tree" O="$scratch/kconfig" LLVM=-19 \
		KCONFIG_ALLCONFIG="$scratch/coco.fragment" allnoconfig >&2 ||
		die "the in-tree series' Kconfig does not configure"
	cfg=$scratch/kconfig/.config
	grep -qx 'CONFIG_PCI_COCO=m' "$cfg" || die "CONFIG_PCI_COCO=m did not survive allnoconfig"
	# What coco.ko uses at run time: the crypto, keys and DOE options the rig's
	# kernel enables for it (scripts/kconfig/coco.config), and what the entry
	# itself selects.
	missing=""
	# (The AMD Secure Processor options, CRYPTO_HW and CRYPTO_DEV_*, are sev_tio.ko's.)
	for sym in $(sed -n 's/^CONFIG_\(CRYPTO_[A-Z0-9_]*\|PCI_DOE\|X509_CERTIFICATE_PARSER\|ASYMMETRIC_[A-Z0-9_]*\)=y$/\1/p' \
		"$COCO_ROOT/scripts/kconfig/coco.config" | grep -vE '^CRYPTO_(HW|DEV_[A-Z0-9_]*)$') \
		$(sed -n 's/^[[:space:]]*select \([A-Z0-9_]*\).*/\1/p' "$tree/drivers/pci/coco/Kconfig"); do
		grep -qE "^CONFIG_$sym=(y|m)$" "$cfg" || missing="$missing $sym"
	done
	[ -z "$missing" ] || die "PCI_COCO=m leaves disabled what coco.ko needs:$missing"
	log "the in-tree Kconfig entry configures: PCI_COCO=m with everything coco.ko needs"
fi
