#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# TDISP against misbehaving devices (the fault boot: one endpoint per fault,
# COCO_VARIANTS names them). On each, with its IDE stream connected and the
# NVMe driver unbound, "bind" on tdisp:
#  - fault:report-outside-bars (a range beyond its BAR) and
#    fault:report-bad-length (a range count the report does not hold): the
#    bind fails with the reason in tdi/error, the interface is stopped again;
#  - fault:tdisp-error:CODE (LOCK_INTERFACE answered TDISP ERROR CODE): the
#    bind fails with "TDISP: ERROR CODE";
#  - fault:stuck-locked (START and STOP acknowledged, the state stays
#    CONFIG_LOCKED): bind works, start and unbind fail with the reason and
#    tdisp keeps reading "locked"; an FLR unlocks it.
# After each: tdisp reads "unlocked", the driver gate is lifted (the NVMe
# driver binds again), and the IDE stream disconnects.
# (fault:start-wrong-nonce, a device that accepts any nonce, cannot be seen by
# a requester that sends the right one; coco-endpoint's cargo tests cover it.)

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

[ -z "$COCO_VARIANTS" ] && [ -r /coco/run.env ] && . /coco/run.env
N=${COCO_ENDPOINTS:-0}

ktap_print_header
if [ "$(id -u)" != 0 ]; then
	ktap_skip_all "needs root"
	exit "$KSFT_SKIP"
fi
coco_ensure_loaded

# The endpoints with a TDISP fault, as "BDF=VARIANT".
FAULTY=
for _v in $COCO_VARIANTS; do
	case "${_v#*:}" in
	fault:report-outside-bars | fault:report-bad-length | fault:stuck-locked | fault:tdisp-error:*)
		FAULTY="$FAULTY $(ep_bdf "${_v%%:*}")=${_v#*:}" ;;
	esac
done
if [ -z "$FAULTY" ]; then
	ktap_skip_all "no endpoint with a TDISP fault in this run"
	exit "$KSFT_SKIP"
fi
set -- $FAULTY
ktap_set_plan $#
coco_log_mark tdisp-faults

# expected VARIANT: the start of tdi/error after the failed bind.
expected() {
	case "$1" in
	fault:report-outside-bars) echo "MMIO range outside the function's BARs" ;;
	fault:report-bad-length) echo "interface report truncated" ;;
	fault:tdisp-error:*) echo "TDISP: ERROR $(echo "${1#fault:tdisp-error:}" | tr 'a-z-' 'A-Z_')" ;;
	esac
}

# prepare BDF: authenticated, IDE stream up, no driver.
prepare() {
	coco_wait_ok 60 "$1" || { coco_diag "$1 is not ok"; return 1; }
	coco_write 30 "$COCO_PCI/$1/coco/ide" connect || { coco_run_diag "$1: ide connect" "$?"; return 1; }
	[ -z "$(coco_driver "$1")" ] || coco_write 30 /sys/bus/pci/drivers/nvme/unbind "$1"
}

# released BDF: unlocked, the gate lifted (the driver binds again), the
# stream disconnected.
released() {
	_rl_rc=0
	[ "$(cat "$COCO_PCI/$1/tdisp")" = unlocked ] || { coco_diag "$1: tdisp '$(cat "$COCO_PCI/$1/tdisp")'"; _rl_rc=1; }
	coco_poll 10 sh -c "[ -e '$COCO_PCI/$1/driver' ]" || { coco_diag "$1: no driver bound again"; _rl_rc=1; }
	coco_write 30 "$COCO_PCI/$1/coco/ide" disconnect || { coco_diag "$1: IDE disconnect failed"; _rl_rc=1; }
	return "$_rl_rc"
}

bind_fails() {
	_bf_b=$1 _bf_v=$2
	prepare "$_bf_b" || return 1
	if coco_write 30 "$COCO_PCI/$_bf_b/tdisp" bind; then
		coco_diag "$_bf_b: bind accepted"
		coco_write 30 "$COCO_PCI/$_bf_b/tdisp" unbind
		released "$_bf_b"
		return 1
	fi
	_bf_e=$(cat "$COCO_PCI/$_bf_b/tdi/error")
	coco_diag "$_bf_b ($_bf_v): tdi/error '$_bf_e'"
	_bf_rc=0
	case "$_bf_e" in "$(expected "$_bf_v")"*) ;; *) _bf_rc=1 ;; esac
	coco_log_since | grep -F "$_bf_b" | grep -q 'coco: TDISP bind failed: ' || { coco_diag "$_bf_b: no 'bind failed' line"; _bf_rc=1; }
	released "$_bf_b" || _bf_rc=1
	return "$_bf_rc"
}

stuck() {
	_st_b=$1
	_st_d=$COCO_PCI/$_st_b
	prepare "$_st_b" || return 1
	coco_write 30 "$_st_d/tdisp" bind || { coco_run_diag "$_st_b: bind" "$?"; return 1; }
	_st_rc=0
	if coco_write 30 "$_st_d/tdisp" start; then
		coco_diag "$_st_b: start accepted"
		_st_rc=1
	fi
	_st_s=$(cat "$_st_d/tdi/error")
	if coco_write 30 "$_st_d/tdisp" unbind; then
		coco_diag "$_st_b: unbind accepted"
		_st_rc=1
	fi
	_st_u=$(cat "$_st_d/tdi/error")
	coco_diag "$_st_b: start: '$_st_s'; unbind: '$_st_u'; tdisp '$(cat "$_st_d/tdisp")'"
	case "$_st_s" in "START_INTERFACE was acknowledged but the interface is not in RUN") ;; *) _st_rc=1 ;; esac
	case "$_st_u" in "STOP_INTERFACE was acknowledged but the interface is not CONFIG_UNLOCKED") ;; *) _st_rc=1 ;; esac
	[ "$(cat "$_st_d/tdisp")" = locked ] || _st_rc=1
	# An FLR returns the interface to CONFIG_UNLOCKED whatever the firmware says.
	coco_write 30 "$_st_d/reset" 1 || { coco_run_diag "$_st_b: reset" "$?"; return 1; }
	coco_poll 30 sh -c "dmesg | grep -F '$_st_b' | grep -q 'returned the TDI to CONFIG_UNLOCKED'"
	coco_poll 30 sh -c "[ \"\$(cat '$_st_d/coco/ide_state')\" = secure ]"
	released "$_st_b" || _st_rc=1
	return "$_st_rc"
}

for _f in $FAULTY; do
	_b=${_f%%=*}
	_v=${_f#*=}
	case "$_v" in
	fault:stuck-locked)
		coco_check "$_v: start and unbind fail with the reason, an FLR unlocks" stuck "$_b" ;;
	*)
		coco_check "$_v: bind fails with the reason, the interface and driver gate released" \
			bind_fails "$_b" "$_v" ;;
	esac
done

ktap_finished
