#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# kernel-options.sh [--ksrc DIR] [--module coco.ko] [--config .config]
#   Prints the kernel options coco.ko needs, derived rather than listed by hand:
#   - the `depends on` and `select` of PCI_COCO in drivers/pci/coco/Kconfig;
#   - for every kernel symbol coco.ko links against (nm -u of a built coco.ko;
#     the kernel-crate additions' helpers included), the option that builds
#     the object exporting it, found from its EXPORT_SYMBOL in the tree and
#     the obj-$(CONFIG_...) lines of the Makefiles up to the top;
#   - for every crypto algorithm coco.ko asks for by name (the c"..." strings
#     of drivers/pci/coco/**.rs, templates split: "p1363(ecdsa-nist-p384)"),
#     the option that builds the crypto/ file registering that name.
#   One line per option (to be set, =y or =m) with the first reason found.
#   Compiler-inserted symbols (sanitizers, return thunks, ftrace) and KUnit's
#   (coco's KUnit suites are built only with CONFIG_KUNIT) are left out: they
#   follow the kernel's own configuration. With --config, each line ends with what that
#   .config has, and the exit status is 1 when one of them is not set.
#
#   --ksrc DIR    kernel source with the kernel-crate additions applied
#                 (default the rig's, $COCO_CACHE/src)
#   --module KO   built coco.ko (default the rig's, under $COCO_CACHE/modules)
#   --config F    a kernel .config to check against
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ksrc=$COCO_CACHE/src ko="" config=""
while [ $# -gt 0 ]; do
	case "$1" in
	--ksrc) ksrc=$2; shift 2 ;;
	--module) ko=$2; shift 2 ;;
	--config) config=$2; shift 2 ;;
	-h | --help) sed -n '3,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown option $1 (see --help)" ;;
	esac
done
[ -f "$ksrc/Makefile" ] || die "no kernel source in $ksrc (--ksrc)"
if [ -z "$ko" ]; then
	ko=$(find "$COCO_CACHE/modules" -name coco.ko 2>/dev/null | head -n 1 || true)
fi
COCO=$COCO_ROOT/drivers/pci/coco
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# makefile_lines DIR: the dir's Kbuild/Makefile with continuation lines joined.
makefile_lines() {
	local f
	for f in "$1/Kbuild" "$1/Makefile"; do
		[ -f "$f" ] && awk '{ if (sub(/\\$/, "")) { buf = buf $0 " "; next } print buf $0; buf = "" }' "$f"
	done
	return 0
}

# options_for DIR OBJ: the CONFIG_ options that must be set for DIR/OBJ to be
# built (into the kernel or as a module), one a line, following composite
# objects and directories up to the top of the tree.
options_for() {
	local dir=$1 obj=$2 depth=${3:-0} lines line var comp
	[ "$depth" -lt 12 ] || return 0
	lines=$(makefile_lines "$ksrc/$dir" | grep -E "(^|[[:space:]=])$obj([[:space:]]|$)" |
		grep -E '^[[:space:]]*[A-Za-z0-9_./$()-]+[[:space:]]*[:+]?=' || true)
	[ -n "$lines" ] || return 0
	while IFS= read -r line; do
		var=${line%%[:+=]*}
		var=${var//[[:space:]]/}
		case "$var" in
		obj-\$\(CONFIG_*\) | lib-\$\(CONFIG_*\))
			var=${var#*\$\(}
			echo "${var%\)}"
			;;
		obj-y | obj-m | lib-y | core-y | drivers-y | libs-y) ;;
		*-\$\(CONFIG_*\) | *-y | *-objs)
			# composite object NAME-... := ... OBJ ...
			comp=${var%-*}
			case "$var" in *-\$\(CONFIG_*\))
				var=${var#*\$\(}
				echo "${var%\)}" ;;
			esac
			[ "$comp.o" != "$obj" ] && options_for "$dir" "$comp.o" $((depth + 1))
			continue
			;;
		*) continue ;;
		esac
		# The directory itself must be descended into.
		[ "$dir" = . ] || options_for "$(dirname "$dir")" "$(basename "$dir")/" $((depth + 1))
	done <<<"$lines"
}

# why OPTION TEXT: one reason for an option.
why() { printf '%s\t%s\n' "$1" "$2" >>"$tmp/why"; }
: >"$tmp/why"

# 1. Kconfig: depends on / select of PCI_COCO.
awk '/^config PCI_COCO$/ { on = 1; next } on && /^(config|menu|endmenu|if|endif|source)/ { on = 0 }
	on && /^[ \t]+depends on / { sub(/^[ \t]+depends on /, ""); print "depends " $0 }
	on && /^[ \t]+select / { sub(/^[ \t]+select /, ""); print "select " $1 }' "$COCO/Kconfig" |
	while read -r kind expr; do
		for s in $(echo "$expr" | tr -c 'A-Za-z0-9_\n' ' '); do
			why "CONFIG_$s" "drivers/pci/coco/Kconfig: PCI_COCO $([ "$kind" = select ] && echo selects || echo "depends on") $s"
		done
	done

# 2. Symbols coco.ko links against.
if [ -n "$ko" ] && [ -f "$ko" ]; then
	nm -u "$ko" | awk '{ print $NF }' |
		grep -vE '^(_R|kunit_|__kunit|__asan_|__kasan|__tsan_|__ubsan_|__sanitizer_|__msan_|__kcsan_|__fentry__|__x86_|__stack_chk|__ref_stack_chk_guard|__SCT__|__SCK__|__cfi_|__kcfi|mcount|__ADDRESSABLE|__pfx_)' |
		sort -u >"$tmp/syms"
	if [ -s "$tmp/syms" ]; then
		re=$(paste -sd'|' "$tmp/syms")
		grep -rE --include='*.[cS]' -o "EXPORT_SYMBOL[A-Z_]*\(($re)\)" "$ksrc" \
			--exclude-dir=Documentation --exclude-dir=tools --exclude-dir=samples 2>/dev/null |
			sed -E 's|^'"$ksrc"'/||; s|:EXPORT_SYMBOL[A-Z_]*\((.*)\)$| \1|' | sort -u >"$tmp/exports" || true
		# A symbol several files export (e.g. mutex_unlock, for PREEMPT_RT or
		# not) needs only what all of them need.
		cut -d' ' -f2 "$tmp/exports" | sort -u | while read -r sym; do
			first=1
			: >"$tmp/need"
			while read -r file; do
				case "$file" in arch/*) case "$file" in arch/x86/*) ;; *) continue ;; esac ;; esac
				base=$(basename "$file")
				options_for "$(dirname "$file")" "${base%.*}.o" | sort -u >"$tmp/opts"
				if [ "$first" = 1 ]; then
					cp "$tmp/opts" "$tmp/need"
					where=$file first=0
				else
					comm -12 "$tmp/need" "$tmp/opts" >"$tmp/both" && mv "$tmp/both" "$tmp/need"
				fi
			done < <(awk -v s="$sym" '$2 == s { print $1 }' "$tmp/exports")
			while read -r o; do
				why "$o" "coco.ko uses $sym ($where)"
			done <"$tmp/need"
		done
	fi
else
	warn "no built coco.ko (--module): the options of the symbols it links against are left out"
fi

# 3. Crypto algorithms asked for by name.
grep -rho --include='*.rs' 'c"[a-z0-9(),_-]*"' "$COCO" | sed 's/^c"//; s/"$//' | sort -u >"$tmp/algs"
while read -r alg; do
	for comp in $(echo "$alg" | tr '(),' '   '); do
		files=$(grep -rlE --include='*.c' "(cra_name|\.name)[[:space:]]*=[[:space:]]*\"$comp\"" "$ksrc/crypto" 2>/dev/null |
			sed "s|^$ksrc/||" | sort) || true
		for file in $files; do
			base=$(basename "$file")
			for o in $(options_for "$(dirname "$file")" "${base%.*}.o" | sort -u); do
				why "$o" "coco.ko asks for the crypto algorithm \"$alg\" ($comp: $file)"
			done
		done
	done
done <"$tmp/algs"

# One line per option (its first reason, and how many more), sorted.
rc=0
sort -t"$(printf '\t')" -k1,1 -s "$tmp/why" | awk -F'\t' '
	$1 != last { if (last != "") print last "\t" first (n > 1 ? " (and " n - 1 " more)" : ""); last = $1; first = $2; n = 0 }
	{ n++ }
	END { if (last != "") print last "\t" first (n > 1 ? " (and " n - 1 " more)" : "") }' >"$tmp/out"
while IFS="$(printf '\t')" read -r opt reason; do
	if [ -n "$config" ]; then
		have=$(grep -E "^$opt=" "$config" | cut -d= -f2)
		printf '%-36s %s  [.config: %s]\n' "$opt" "$reason" "${have:-not set}"
		[ -n "$have" ] || rc=1
	else
		printf '%-36s %s\n' "$opt" "$reason"
	fi
done <"$tmp/out"
exit "$rc"
