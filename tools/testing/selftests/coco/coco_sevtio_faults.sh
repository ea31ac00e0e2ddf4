#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The AMD SEV-TIO backend against a misbehaving PSP firmware and device, one
# fault per endpoint (scripts/check.sh starts the firmware model with
# --psp-fault F@BB:DD.F; Documentation/coco/sev-tio-platform.rst):
#  - 01:00.0 status:0xd4=0x35: TIO_DEV_CONNECT fails with ERR_IN_DEV_CONN;
#  - 02:00.0 relay-forever: the PSP asks for relays without end, the host
#    stops after 64;
#  - 03:00.0 expand-forever: the PSP asks for a larger output buffer without
#    end, the host stops after 4 expansions; the link is up, the evidence
#    not shown (coco.ko's stays, source "coco");
#  - 04:00.0 bad-rp-key: the root port's keys differ from the endpoint's,
#    the link check fails once both ends are enabled;
#  - 05:00.0 status:0xd2=0x17: TIO_DEV_CREATE fails with RESOURCE_LIMIT;
#  - 06:00.0 (endpoint fault:bad-kex-signature): the device fails the PSP's
#    key exchange mid-proxy: SPDM_ERROR.
# Every failed connect: the reason (with the firmware's status) in the log,
# nothing enabled on either end, the Stream ID given back, the mailbox back
# to coco.ko, which authenticates the device again; no splat, and the PSP
# still connects a device afterwards.

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
TIO_KO=${TIO_KO:-/lib/modules/sev_tio.ko}

ktap_print_header
case " ${COCO_PSP_FAULTS:-} " in
*" status:0xd4=0x35@01:00.0 "*) ;;
*)
	ktap_skip_all "the firmware model runs without this test's faults (scripts/check.sh)"
	exit "$KSFT_SKIP"
	;;
esac
need_ide_endpoint "$(ep_bdf 0)"

tio_tsm() {
	for _tt in /sys/class/tsm/tsm*; do
		_tt_d=$(readlink -f "$_tt/device" 2>/dev/null)
		[ "$(cat "$_tt_d/vendor" 2>/dev/null)" = 0x1022 ] && { basename "$_tt"; return 0; }
	done
	return 1
}

# released BDF: nothing enabled on either end, the mailbox back with coco.ko
# and the device authenticated again by it.
released() {
	_rl_rp=$(rp_of "$1")
	for _rl_b in "$1" "$_rl_rp"; do
		_rl_cap=$(ext_cap "$_rl_b" $PCI_EXT_CAP_ID_IDE)
		_rl_n=$(nr_sel "$_rl_b" "$_rl_cap")
		_rl_i=0
		while [ "$_rl_i" -lt "$_rl_n" ]; do
			_rl_blk=$(sel_block "$_rl_b" "$_rl_cap" "$_rl_i")
			if [ $(($(cfg_rdn "$_rl_b" $((_rl_blk + 4))) & IDE_SEL_EN)) -ne 0 ]; then
				coco_diag "$_rl_b: selective stream block $_rl_i still enabled"
				return 1
			fi
			_rl_i=$((_rl_i + 1))
		done
	done
	[ "$(coco_attr "$1" mailbox_owner)" = coco ] || { coco_diag "$1: owner $(coco_attr "$1" mailbox_owner)"; return 1; }
	coco_wait_ok 60 "$1" && [ "$(coco_attr "$1" evidence_source)" = coco ]
}

# fails BDF PATTERN: tsm/connect fails, the log names the reason, released.
fails() {
	_fl_d=$COCO_PCI/$1
	coco_wait_ok 60 "$1" || return 1
	if coco_write 90 "$_fl_d/tsm/connect" "$T"; then
		coco_diag "$1: connect accepted"
		coco_write 60 "$_fl_d/tsm/disconnect" "$T"
		return 1
	fi
	_fl_l=$(coco_log_since | grep -F "$1" | grep 'sev-tio: connect failed: ' | tail -n 1)
	coco_diag "$1: ${_fl_l#*sev-tio: }"
	case "$_fl_l" in *"$2"*) ;; *) return 1 ;; esac
	released "$1"
}

ktap_set_plan 8
coco_run 60 insmod "$TIO_KO" || coco_run_diag "insmod sev_tio.ko" "$?"
T=$(tio_tsm)
coco_diag "sev-tio TSM: '$T'"
coco_log_mark sevtio-faults
HB=$(readlink -f "$COCO_PCI/$(ep_bdf 0)")
HB=${HB%%/0000:*}
AVAIL0=$(cat "$HB/available_secure_streams" 2>/dev/null)

coco_check "PSP status ERR_IN_DEV_CONN: connect fails with the status, released" \
	fails 0000:01:00.0 "the PSP failed the command (status 0x0035"
coco_check "a PSP that asks for relays without end: stopped after 64, released" \
	fails 0000:02:00.0 "the PSP asked for more SPDM relays than a command may take"

expand() {
	_ex_d=$COCO_PCI/0000:03:00.0
	coco_wait_ok 60 0000:03:00.0 || return 1
	coco_write 90 "$_ex_d/tsm/connect" "$T" || { coco_run_diag "tsm/connect" "$?"; return 1; }
	_ex_l=$(coco_log_since | grep -F 0000:03:00.0 | grep 'sev-tio: connected, but' | tail -n 1)
	_ex_s=$(coco_attr 0000:03:00.0 evidence_source)
	coco_diag "${_ex_l#*sev-tio: }; evidence_source '$_ex_s'"
	coco_write 60 "$_ex_d/tsm/disconnect" "$T" || return 1
	case "$_ex_l" in *"expand the output buffer too many times"*) ;; *) return 1 ;; esac
	[ "$_ex_s" = coco ] && released 0000:03:00.0
}
coco_check "a PSP that asks for larger buffers without end: stopped after 4, no evidence shown" expand

coco_check "root-port keys differ from the endpoint's: the link check fails, released" \
	fails 0000:04:00.0 "IDE integrity check failure once both ends were enabled"
coco_check "PSP status RESOURCE_LIMIT at TIO_DEV_CREATE: connect fails, released" \
	fails 0000:05:00.0 "the PSP failed the command (status 0x0017"
coco_check "the device fails the PSP's key exchange mid-proxy: SPDM_ERROR, released" \
	fails 0000:06:00.0 "the PSP failed the command (status 0x0033"

streams_back() {
	_a=$(cat "$HB/available_secure_streams" 2>/dev/null)
	coco_diag "available_secure_streams $AVAIL0 -> $_a; links: $(ls -d "$HB"/stream* 2>/dev/null)"
	[ "$_a" = "$AVAIL0" ] && [ -z "$(ls -d "$HB"/stream* 2>/dev/null)" ]
}
coco_check "every Stream ID given back, no stream link left" streams_back

no_warnings() {
	_w=$(coco_log_since_raw | coco_log_errors | grep -v -e 'sev-tio: connect failed: ' -e '0000:06:00.0: coco: ')
	[ -z "$_w" ] || { echo "$_w" | coco_diag_stream 10; return 1; }
}
coco_check "no warning, oops, lockdep or KASAN report" no_warnings

coco_run 60 rmmod sev_tio
coco_ensure_loaded
ktap_finished
