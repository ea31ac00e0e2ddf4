#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# coco.ko in a confidential guest (Documentation/coco/sev-tio-guest.rst), on
# the rig's guest boot (scripts/qemu-run.sh --guest): every assigned TDI is
# held from drivers since enumeration (pci=tee_accept), bound through the
# guest channel, verified and accepted before its driver probes.
#
#  - the NVMe driver was refused every function before acceptance;
#  - a function whose evidence verifies: RUN, the NVMe driver bound, its
#    namespace readable, the evidence in the host's sysfs files (certificates/,
#    measurements/, tdi/report) from "tsm sev-tio-guest", and coco-verify
#    (userspace, not trusting the kernel) agrees with the reference;
#  - a function whose measurements differ from the reference
#    (measurements:sparse), whose chain is untrusted (fault:untrusted-root),
#    whose report lies (fault:report-outside-bars), or whose blobs the host
#    changed (coco-psp tamper:KIND): held, no driver, the reason in tdi/error;
#    accept refused; a re-verification sends COCO_TDISP=rejected;
#  - a TDI the host side moves to ERROR (coco-psp tdi-error-after:N): noticed,
#    its driver unbound cleanly;
#  - guest_accept=1 (userspace decides): after a release and a reload the
#    verified TDI waits without a driver until userspace, having run its own
#    checks, writes accept;
#  - a reload keeps an accepted TDI accepted (verified again).
#
# The layout comes from the run: COCO_VARIANTS ("<index>:<variant> ...") and
# COCO_PSP_FAULTS ("F@BB:DD.F ..."); endpoint i is the function on bus i + 1.

# Lists of BDFs are split on purpose: a BDF has no blank and no glob character.
# shellcheck disable=SC2086

DIR=$(dirname "$0")
for _f in "$DIR/../kselftest/ktap_helpers.sh" "$DIR/coco_lib.sh" "$DIR/coco_pci.sh"; do
	[ -r "$_f" ] || { printf 'TAP version 13\nBail out! missing %s\n' "$_f"; exit 1; }
done
# shellcheck source=/dev/null
. "$DIR/../kselftest/ktap_helpers.sh"
# shellcheck source=coco_lib.sh
. "$DIR/coco_lib.sh"
# shellcheck source=coco_pci.sh
. "$DIR/coco_pci.sh"

[ -r /coco/run.env ] && . /coco/run.env
REF=/lib/firmware/coco/measurements.ref

ktap_print_header
if [ "${COCO_GUEST:-0}" != 1 ]; then
	ktap_skip_all "not a confidential guest boot (scripts/qemu-run.sh --guest)"
	exit "$KSFT_SKIP"
fi

# expect I: what endpoint I's function should end as: "ok", "error" (the
# host moves it to ERROR) or "reject:TEXT" (tdi/error contains TEXT).
expect() {
	_ex_bdf=$(ep_bdf "$1")
	_ex_short=${_ex_bdf#0000:}
	for _ex_f in $COCO_PSP_FAULTS; do
		[ "${_ex_f#*@}" = "$_ex_short" ] || continue
		case "${_ex_f%@*}" in
		tamper:*) echo "reject:match the TSM's digest"; return ;;
		tdi-error-after:*) echo error; return ;;
		esac
	done
	for _ex_v in $COCO_VARIANTS; do
		[ "${_ex_v%%:*}" = "$1" ] || continue
		case "${_ex_v#*:}" in
		measurements:*) echo "reject:differ from the reference"; return ;;
		fault:untrusted-root) echo "reject:not trusted"; return ;;
		fault:report-outside-bars) echo "reject:outside the function's BARs"; return ;;
		esac
	done
	echo ok
}

tdisp() { cat "$COCO_PCI/$1/tdisp" 2>/dev/null; }
tdi_error() { cat "$COCO_PCI/$1/tdi/error" 2>/dev/null; }

# settled BDF...: accepted (run) or held with a reason.
settled() {
	for _st_b in "$@"; do
		[ "$(tdisp "$_st_b")" = run ] && continue
		[ -n "$(tdi_error "$_st_b")" ] && continue
		return 1
	done
	return 0
}

# namespace_of BDF: the block device of the function's first namespace.
namespace_of() {
	for _ns in "$COCO_PCI/$1"/nvme/nvme*/nvme*n1; do
		[ -e "$_ns" ] && { echo "/dev/${_ns##*/}"; return 0; }
	done
	return 1
}

# reads_namespace BDF I: the namespace's first sector names endpoint I.
reads_namespace() {
	_rn_dev=
	coco_poll 20 namespace_of "$1" >/dev/null
	_rn_dev=$(namespace_of "$1") || { coco_diag "$1: no namespace"; return 1; }
	coco_poll 10 test -b "$_rn_dev"
	_rn_s=$(dd if="$_rn_dev" bs=512 count=1 2>/dev/null | head -c 17)
	[ "$_rn_s" = "coco-guest-disk-$2" ] ||
		{ coco_diag "$1: $_rn_dev reads '$_rn_s'"; return 1; }
}

ALL="" GOOD="" GOOD_I="" BAD="" ERR=""
i=0
while [ "$i" -lt "${COCO_ENDPOINTS:-0}" ]; do
	b=$(ep_bdf "$i")
	ALL="$ALL $b"
	case "$(expect "$i")" in
	ok) GOOD="$GOOD $b" GOOD_I="$GOOD_I $i" ;;
	error) ERR="$ERR $b" ;;
	*) BAD="$BAD $i" ;;
	esac
	i=$((i + 1))
done
set -- $GOOD
FIRST=$1
set -- $GOOD_I
FIRST_I=$1
nbad=0
for _i in $BAD; do nbad=$((nbad + 1)); done
ktap_set_plan $((13 + nbad))

coco_poll 60 settled $ALL

# 1. The gate: the built-in NVMe driver met every function before coco.ko.
LOG=$(dmesg)
missing=""
for b in $ALL; do
	printf '%s\n' "$LOG" | grep -q "nvme $b: nvme may not bind: TEE-I/O function not accepted yet" ||
		missing="$missing $b"
done
coco_check "the NVMe driver was refused every assigned function before acceptance" \
	test -z "$missing"
[ -n "$missing" ] && coco_diag "no refusal logged for:$missing"

# 2. Verified and accepted: RUN, driver, evidence, namespace.
accepted() {
	for _ac_i in $GOOD_I; do
		_ac_b=$(ep_bdf "$_ac_i")
		_ac_d=$COCO_PCI/$_ac_b
		[ "$(tdisp "$_ac_b")" = run ] || { coco_diag "$_ac_b: tdisp '$(tdisp "$_ac_b")' $(tdi_error "$_ac_b")"; return 1; }
		[ "$(coco_driver "$_ac_b")" = nvme ] || { coco_diag "$_ac_b: driver '$(coco_driver "$_ac_b")'"; return 1; }
		[ "$(coco_attr "$_ac_b" evidence_source)" = "tsm sev-tio-guest" ] ||
			{ coco_diag "$_ac_b: evidence_source '$(coco_attr "$_ac_b" evidence_source)'"; return 1; }
		for _ac_f in certificates/slot0 measurements/transcript tdi/report; do
			[ "$(head -c 64 "$_ac_d/$_ac_f" 2>/dev/null | wc -c)" -gt 0 ] ||
				{ coco_diag "$_ac_b: $_ac_f is empty"; return 1; }
		done
		reads_namespace "$_ac_b" "$_ac_i" || return 1
	done
}
coco_check "verified TDIs are in RUN with the NVMe driver bound, their evidence shown and their namespace read" \
	accepted

# 3. The driver came after the acceptance, for each accepted function.
order_ok() {
	for _oo_b in $GOOD; do
		_oo_r=$(printf '%s\n' "$LOG" | grep -n "nvme $_oo_b: nvme may not bind" | head -n 1 | cut -d: -f1)
		_oo_a=$(printf '%s\n' "$LOG" | grep -n "$_oo_b: coco: TDI accepted" | head -n 1 | cut -d: -f1)
		[ -n "$_oo_r" ] && [ -n "$_oo_a" ] && [ "$_oo_r" -lt "$_oo_a" ] ||
			{ coco_diag "$_oo_b: refusal at line '$_oo_r', acceptance at '$_oo_a'"; return 1; }
	done
}
coco_check "each accepted function was refused before it was accepted" order_ok

# 4. Userspace re-verifies the shown evidence without trusting the kernel.
if command -v coco-verify >/dev/null && [ -r "$REF" ] && [ -r /coco/root.der ]; then
	coco_check "coco-verify agrees: chain, signature and reference of $FIRST" \
		coco-verify --device "$COCO_PCI/$FIRST" --reference "$REF" --trust-anchor /coco/root.der
else
	ktap_test_skip "coco-verify, the reference or the trust anchor is missing"
fi

# 5. Held with the reason: one line per misbehaving function.
rejected_ok() {
	_ro_b=$(ep_bdf "$1")
	_ro_want=$(expect "$1")
	_ro_want=${_ro_want#reject:}
	[ -z "$(coco_driver "$_ro_b")" ] || { coco_diag "$_ro_b: driver '$(coco_driver "$_ro_b")'"; return 1; }
	[ "$(tdisp "$_ro_b")" != run ] || { coco_diag "$_ro_b: in RUN"; return 1; }
	case "$(tdi_error "$_ro_b")" in
	*"$_ro_want"*) return 0 ;;
	esac
	coco_diag "$_ro_b: tdi/error '$(tdi_error "$_ro_b")', wanted '$_ro_want'"
	return 1
}
for i in $BAD; do
	w=$(expect "$i")
	coco_check "$(ep_bdf "$i") held without a driver: ${w#reject:}" rejected_ok "$i"
done

# 6. Accepting a rejected TDI is refused.
set -- $BAD
R0=$(ep_bdf "$1")
coco_check "accept of a rejected TDI is refused" \
	sh -c '! echo accept 2>/dev/null >"$1"' sh "$COCO_PCI/$R0/tdisp"

# 7. A re-verification of a rejected TDI sends COCO_TDISP=rejected.
coco_tmp_init
HOTPLUG=/proc/sys/kernel/hotplug
if [ -w "$HOTPLUG" ]; then
	OLD_HELPER=$(cat "$HOTPLUG")
	cat >"$COCO_TMP/helper" <<HELPER_EOF
#!/bin/sh
[ "\$ACTION" = change ] && [ -n "\$COCO_TDISP" ] && echo "\$DEVPATH \$COCO_TDISP" >>"$COCO_TMP/events"
exit 0
HELPER_EOF
	chmod +x "$COCO_TMP/helper"
	echo "$COCO_TMP/helper" >"$HOTPLUG"
	coco_rescan "$R0" 2>/dev/null
	coco_poll 10 grep -q "$R0 rejected" "$COCO_TMP/events"
	coco_check "a rejected TDI verified again sends COCO_TDISP=rejected" \
		grep -q "$R0 rejected" "$COCO_TMP/events"
	echo "$OLD_HELPER" >"$HOTPLUG"
else
	ktap_test_skip "no uevent helper ($HOTPLUG)"
fi

# 8. The host moves a TDI to ERROR: the driver goes, cleanly.
if [ -n "$ERR" ]; then
	set -- $ERR
	E0=$1
	lost() {
		[ "$(tdisp "$E0")" = error ] && [ -z "$(coco_driver "$E0")" ]
	}
	coco_poll 60 lost
	coco_check "a TDI the host moved to ERROR is noticed and its driver unbound" lost
	case "$(tdi_error "$E0")" in
	*"left RUN"*) ktap_test_pass "tdi/error says why ($E0)" ;;
	*) ktap_test_fail "tdi/error says why ($E0): '$(tdi_error "$E0")'" ;;
	esac
else
	ktap_test_skip "no tdi-error-after fault in this run"
	ktap_test_skip "no tdi-error-after fault in this run"
fi

# 9. Release: the driver unbound, the TDI unbound, no driver comes back.
coco_write 30 "$COCO_PCI/$FIRST/tdisp" unbind
released() {
	[ -z "$(coco_driver "$FIRST")" ] && [ "$(tdisp "$FIRST")" != run ]
}
coco_check "unbind through tdisp releases the driver and the TDI" released

# 10. guest_accept=1: verified, held until userspace accepts.
coco_rmmod
coco_insmod guest_accept=1
waiting() {
	[ "$(tdisp "$FIRST")" = locked ] && [ -z "$(tdi_error "$FIRST")" ]
}
coco_poll 30 waiting
coco_check "guest_accept=1: the verified TDI waits without a driver" \
	sh -c '[ "$(cat "$1/tdisp")" = locked ] && [ ! -e "$1/driver" ]' sh "$COCO_PCI/$FIRST"
user_accepts() {
	if command -v coco-verify >/dev/null && [ -r "$REF" ]; then
		coco-verify --device "$COCO_PCI/$FIRST" --reference "$REF" \
			--trust-anchor /coco/root.der >/dev/null || { coco_diag "coco-verify failed"; return 1; }
	fi
	coco_write 30 "$COCO_PCI/$FIRST/tdisp" accept || return 1
	coco_poll 20 sh -c '[ "$(readlink "$1/driver")" != "" ]' sh "$COCO_PCI/$FIRST"
	[ "$(coco_driver "$FIRST")" = nvme ] && [ "$(tdisp "$FIRST")" = run ] &&
		reads_namespace "$FIRST" "$FIRST_I"
}
coco_check "userspace checks the evidence and accepts: the driver binds and reads its namespace" \
	user_accepts

# 11. A reload keeps an accepted TDI accepted (verified again).
coco_rmmod
coco_insmod
coco_poll 30 sh -c '[ "$(cat "$1/tdisp")" = run ]' sh "$COCO_PCI/$FIRST"
coco_check "a reload verifies the accepted TDI again and keeps its driver" \
	sh -c '[ "$(cat "$1/tdisp")" = run ] && [ -e "$1/driver" ]' sh "$COCO_PCI/$FIRST"

# 12. Nothing went wrong in the kernel.
coco_check "no oops, KASAN report or lockdep splat" \
	sh -c '! dmesg | grep -q -E "BUG:|KASAN|WARNING:|possible circular|Oops"'

ktap_finished
