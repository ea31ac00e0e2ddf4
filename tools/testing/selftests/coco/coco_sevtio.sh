#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The AMD SEV-TIO backend (sev_tio.ko) on the rig's emulated PSP (scripts/
# qemu-run.sh --psp: the coco-psp QEMU device and its firmware model,
# Documentation/coco/sev-tio-platform.rst). The PSP is the SPDM requester;
# coco.ko relays its messages and shows the evidence it returns:
#  - sev_tio.ko binds the PSP (1022:c0c0) and registers a link TSM whose
#    /sys/class/tsm device is the PSP;
#  - tsm/connect with it: both ends' Selective IDE Stream blocks enabled with
#    the same Stream ID and Secure with the keys the PSP programmed; coco.ko's
#    session ended and the mailbox owned by "sev-tio"; certificates/ and
#    measurements/ show the PSP's evidence (coco/evidence_source "tsm sev-tio"): the
#    same certificates coco.ko read, signed measurement blocks;
#  - root's rescan is refused while the PSP owns the mailbox;
#  - tdisp bind through the PSP (TIO_TDI_CREATE, TIO_TDI_BIND, TIO_TDI_REPORT):
#    locked, the report's MMIO range is BAR0, no driver may bind, start is
#    refused (the VM starts its TDI through the PSP), the state is checked
#    through TIO_TDI_STATUS; unbind: unlocked, the NVMe driver back;
#    disconnect with a TDI bound stops it;
#  - tsm/disconnect: both ends disabled, the mailbox back to coco.ko, which
#    authenticates the device again and shows its own evidence;
#  - rmmod sev_tio with a device connected disconnects it; coco.ko cannot
#    be removed while sev_tio.ko uses it, and both load again in order;
#  - the native backend and the PSP never connect the same function at once.
#
# Needs --psp; skips otherwise.

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
if [ "${COCO_PSP:-0}" != 1 ]; then
	ktap_skip_all "no emulated PSP (scripts/qemu-run.sh --psp)"
	exit "$KSFT_SKIP"
fi
EP=$(ep_bdf 0)
D=$COCO_PCI/$EP
need_ide_endpoint "$EP"
RP=$(rp_of "$EP")

# psp_bdf: the emulated PSP's BDF.
psp_bdf() {
	for _pb in "$COCO_PCI"/*; do
		[ "$(cat "$_pb/vendor")" = 0x1022 ] && [ "$(cat "$_pb/device")" = 0xc0c0 ] &&
			{ basename "$_pb"; return 0; }
	done
	return 1
}

# tio_tsm: "tsmN" whose device is the PSP.
tio_tsm() {
	_tt_p=$(psp_bdf) || return 1
	for _tt in /sys/class/tsm/tsm*; do
		[ "$(basename "$(readlink -f "$_tt/device" 2>/dev/null)")" = "$_tt_p" ] &&
			{ basename "$_tt"; return 0; }
	done
	return 1
}

tio_loaded() {
	grep -q '^sev_tio ' /proc/modules
}

tio_insmod() {
	tio_loaded || coco_run 60 insmod "$TIO_KO"
}

cleanup() {
	_t=$(tio_tsm 2>/dev/null) && coco_write 30 "$D/tsm/disconnect" "$_t" 2>/dev/null
	tio_loaded && coco_run 60 rmmod sev_tio
	coco_ensure_loaded
}

ktap_set_plan 13
coco_tmp_init
coco_wait_ok 60 "$EP" || coco_diag "$EP is not ok"
cp "$D/certificates/slot0" "$COCO_TMP/slot0.coco" 2>/dev/null
coco_log_mark sevtio

bound() {
	tio_insmod || { coco_run_diag "insmod sev_tio.ko" "$?"; return 1; }
	_p=$(psp_bdf) || { coco_diag "no 1022:c0c0 function"; return 1; }
	_t=$(tio_tsm) || { coco_diag "no /sys/class/tsm entry under $_p"; return 1; }
	coco_diag "PSP $_p, driver $(basename "$(readlink -f "$COCO_PCI/$_p/driver")"), $_t"
	coco_log_since | grep -F "$_p" | grep -q 'sev-tio: SEV-TIO firmware ready (mailbox: registers)'
}
coco_check "sev_tio.ko binds the emulated PSP and registers a link TSM" bound
T=$(tio_tsm)

connected() {
	[ -n "$T" ] || return 1
	coco_write 60 "$D/tsm/connect" "$T" || { coco_run_diag "tsm/connect $T" "$?"; return 1; }
	_e=$(enabled_id "$EP")
	_r=$(enabled_id "$RP")
	_o=$(coco_attr "$EP" mailbox_owner)
	_s=$(coco_attr "$EP" session)
	coco_diag "blocks: endpoint '$_e', root port '$_r'; mailbox_owner '$_o'; session '$_s'"
	case "$_e" in *" $IDE_SECURE") ;; *) return 1 ;; esac
	[ "$_e" = "$_r" ] && [ "$_o" = "tsm sev-tio" ] && [ "$(cat "$D/tsm/connect")" = "$T" ] &&
		case "$_s" in established*) false ;; *) true ;; esac &&
		coco_log_since | grep -F "$EP" | grep -q 'sev-tio: connected by the PSP: IDE stream'
}
coco_check "tsm/connect with the PSP: both ends Secure, coco.ko's session ended" connected

evidence() {
	_cs=$(coco_attr "$EP" evidence_source)
	_ms=$(coco_attr "$EP" mailbox_owner)
	_st=$(cat "$D/measurements/status")
	_nb=$(ls -d "$D"/measurements/[0-9]* 2>/dev/null | wc -l)
	coco_diag "evidence_source '$_cs', mailbox_owner '$_ms', status '$_st', $_nb blocks, signature $(wc -c <"$D/measurements/signature") bytes"
	coco_diag "slot0 $(wc -c <"$D/certificates/slot0") bytes (coco.ko's: $(wc -c <"$COCO_TMP/slot0.coco")), transcript $(wc -c <"$D/measurements/transcript") bytes, nonce $(cat "$D/measurements/nonce")"
	[ "$_cs" = "tsm sev-tio" ] && [ "$_ms" = "tsm sev-tio" ] && [ "$_st" = ok ] && [ "$_nb" -gt 0 ] &&
		[ "$(wc -c <"$D/measurements/transcript")" -gt 0 ] &&
		[ "$(wc -c <"$D/measurements/signature")" -gt 0 ] &&
		cmp -s "$D/certificates/slot0" "$COCO_TMP/slot0.coco"
}
coco_check "the PSP's certificates and measurements in sysfs, evidence_source 'tsm sev-tio'" evidence

refused() {
	! coco_write 15 "$D/coco/rescan" 1 || { coco_diag "rescan accepted"; return 1; }
	_n=$(native_tsm) || return 1
	! coco_write 15 "$D/coco/ide" connect || { coco_diag "native connect accepted"; return 1; }
	[ "$(enabled_id "$EP")" = "$(enabled_id "$RP")" ] && [ -n "$(enabled_id "$EP")" ]
}
coco_check "while the PSP owns the device: rescan and the native backend refused" refused

nvme_unbind() {
	[ -z "$(coco_driver "$EP")" ] || coco_write 30 /sys/bus/pci/drivers/nvme/unbind "$EP"
}

tdi_locked() {
	nvme_unbind || return 1
	coco_write 60 "$D/tdisp" bind || {
		coco_run_diag "tdisp bind" "$?"
		coco_diag "tdi/error '$(cat "$D/tdi/error")'"
		return 1
	}
	_tl_r=$(head -n 1 "$D/tdi/mmio_ranges" | awk '{ print $1, $2 }')
	_tl_b=$(head -n 1 "$D/resource" | awk '{ print $1, $2 }')
	coco_diag "tdisp '$(cat "$D/tdisp")', range '$_tl_r' (BAR0 $_tl_b), lock_flags $(cat "$D/tdi/lock_flags"), report $(wc -c <"$D/tdi/report") bytes"
	[ "$(cat "$D/tdisp")" = locked ] && [ "$_tl_r" = "$_tl_b" ] && [ -z "$(cat "$D/tdi/error")" ] &&
		coco_log_since | grep -F "$EP" | grep -q 'sev-tio: TDI locked by the PSP: report'
}
coco_check "tdisp bind through the PSP: locked, the report's MMIO range is BAR0" tdi_locked

tdi_gated() {
	_tg_rc=0
	if coco_write 15 /sys/bus/pci/drivers/nvme/bind "$EP"; then
		coco_diag "nvme bound while the TDI is locked"
		_tg_rc=1
	fi
	if coco_write 15 "$D/tdisp" start; then
		coco_diag "start accepted"
		_tg_rc=1
	fi
	coco_diag "tdi/error '$(cat "$D/tdi/error")'"
	case "$(cat "$D/tdi/error")" in *"started by its VM"*) ;; *) _tg_rc=1 ;; esac
	# The periodic check asks the PSP (TIO_TDI_STATUS) for the state.
	coco_poll 10 sh -c "dmesg | grep -F '$EP' | grep -q 'sev-tio: TDI state check failed'" &&
		{ coco_diag "a state check failed"; _tg_rc=1; }
	[ "$(cat "$D/tdisp")" = locked ] && [ -z "$(coco_driver "$EP")" ] || _tg_rc=1
	return "$_tg_rc"
}
coco_check "while locked no driver binds; start is refused (the VM starts it through the PSP)" tdi_gated

tdi_unbound() {
	coco_write 60 "$D/tdisp" unbind || { coco_run_diag "tdisp unbind" "$?"; return 1; }
	coco_poll 10 sh -c "[ -e '$D/driver' ]"
	coco_diag "tdisp '$(cat "$D/tdisp")', driver '$(coco_driver "$EP")'"
	[ "$(cat "$D/tdisp")" = unlocked ] && [ "$(coco_driver "$EP")" = nvme ] &&
		coco_log_since | grep -F "$EP" | grep -q 'sev-tio: TDI stopped by the PSP'
}
coco_check "tdisp unbind through the PSP: unlocked, the NVMe driver binds again" tdi_unbound

disconnected() {
	coco_write 60 "$D/tsm/disconnect" "$T" || { coco_run_diag "tsm/disconnect" "$?"; return 1; }
	_e=$(enabled_id "$EP")
	_r=$(enabled_id "$RP")
	coco_diag "blocks: endpoint '$_e', root port '$_r'; mailbox_owner '$(coco_attr "$EP" mailbox_owner)'"
	[ -z "$_e" ] && [ -z "$_r" ] && [ "$(coco_attr "$EP" mailbox_owner)" = coco ] || return 1
	coco_wait_ok 60 "$EP" || return 1
	_cs=$(coco_attr "$EP" evidence_source)
	coco_diag "after: evidence_source '$_cs', authenticated $(cat "$D/authenticated")"
	[ "$_cs" = coco ] &&
		cmp -s "$D/certificates/slot0" "$COCO_TMP/slot0.coco"
}
coco_check "tsm/disconnect: both ends disabled, coco.ko authenticates the device again" disconnected

again() {
	coco_write 60 "$D/tsm/connect" "$T" || { coco_run_diag "tsm/connect again" "$?"; return 1; }
	_e=$(enabled_id "$EP")
	coco_write 60 "$D/tsm/disconnect" "$T" || return 1
	coco_diag "second connect: endpoint '$_e'"
	case "$_e" in *" $IDE_SECURE") ;; *) return 1 ;; esac
	[ -z "$(enabled_id "$EP")" ]
}
coco_check "connect and disconnect again (the firmware's context reclaimed)" again

tdi_disconnect() {
	coco_write 60 "$D/tsm/connect" "$T" || { coco_run_diag "tsm/connect" "$?"; return 1; }
	nvme_unbind || return 1
	coco_write 60 "$D/tdisp" bind || { coco_run_diag "tdisp bind" "$?"; return 1; }
	coco_write 60 "$D/tsm/disconnect" "$T" || { coco_run_diag "tsm/disconnect" "$?"; return 1; }
	coco_poll 10 sh -c "[ -e '$D/driver' ]"
	coco_diag "after disconnect: tdisp '$(cat "$D/tdisp")', driver '$(coco_driver "$EP")', owner '$(coco_attr "$EP" mailbox_owner)'"
	[ "$(cat "$D/tdisp")" = unlocked ] && [ "$(coco_driver "$EP")" = nvme ] &&
		[ "$(coco_attr "$EP" mailbox_owner)" = coco ] && coco_wait_ok 60 "$EP"
}
coco_check "disconnect with a TDI bound: the PSP stops it, host drivers bind again" tdi_disconnect

rmmod_connected() {
	coco_write 60 "$D/tsm/connect" "$T" || { coco_run_diag "tsm/connect" "$?"; return 1; }
	coco_run 60 rmmod sev_tio || { coco_run_diag "rmmod sev_tio" "$?"; return 1; }
	_e=$(enabled_id "$EP")
	_o=$(coco_attr "$EP" mailbox_owner)
	coco_diag "after rmmod: endpoint '$_e', root port '$(enabled_id "$RP")', owner '$_o'"
	[ -z "$_e" ] && [ -z "$(enabled_id "$RP")" ] && [ "$_o" = coco ] && coco_wait_ok 60 "$EP"
}
coco_check "rmmod sev_tio with a device connected disconnects it" rmmod_connected

module_order() {
	tio_insmod || return 1
	if coco_run 30 rmmod coco 2>/dev/null; then
		coco_diag "coco.ko removed under sev_tio.ko"
		coco_ensure_loaded
		return 1
	fi
	coco_run 60 rmmod sev_tio || return 1
	coco_rmmod || return 1
	coco_insmod || return 1
	tio_insmod || return 1
	_t=$(tio_tsm) || return 1
	coco_diag "reloaded: $_t"
	coco_wait_ok 60 "$EP"
}
coco_check "coco.ko stays while sev_tio.ko uses it; both unload and load again" module_order

no_warnings() {
	_w=$(coco_log_since_raw | coco_log_errors | grep -v -e 'coco: IDE connect refused: the DOE mailbox is owned by' \
		-e 'probe with driver nvme failed with error -16' -e 'coco: TDISP start refused: ')
	[ -z "$_w" ] || { echo "$_w" | coco_diag_stream 10; return 1; }
}
coco_check "no warning, oops, lockdep or KASAN report" no_warnings

cleanup
ktap_finished
