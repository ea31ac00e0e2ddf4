#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# coco tracks PCI functions, not drivers: unbinding and rebinding the NVMe
# driver leaves the coco directory and its state alone. Then the module
# itself is removed (every coco directory goes) and loaded again (they come
# back and probe ok).
#
# Environment: COCO_ENDPOINTS (number of emulated endpoints).

# Lists of BDFs ("0000:01:00.0 0000:02:00.0") are split on purpose: a BDF
# has no blank and no glob character.
# shellcheck disable=SC2086,SC2046,SC2116

DIR=$(dirname "$0")
for _f in "$DIR/../kselftest/ktap_helpers.sh" "$DIR/coco_lib.sh"; do
	[ -r "$_f" ] || { printf 'TAP version 13\nBail out! missing %s\n' "$_f"; exit 1; }
done
# shellcheck source=/dev/null
. "$DIR/../kselftest/ktap_helpers.sh"
# shellcheck source=coco_lib.sh
. "$DIR/coco_lib.sh"

NVME_DRV=/sys/bus/pci/drivers/nvme
N=${COCO_ENDPOINTS:-}
DEV=
UNBOUND=

cleanup() {
	if [ -n "$UNBOUND" ] && [ -n "$DEV" ] && [ -z "$(coco_driver "$DEV")" ]; then
		coco_diag "cleanup: binding $DEV to nvme again"
		coco_write 30 "$NVME_DRV/bind" "$DEV" || coco_run_diag "cleanup: bind" "$?"
	fi
	coco_default_cleanup
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

ktap_print_header
ktap_set_plan 15

DEVS=$(coco_devices)
COUNT=$(coco_count)
coco_diag "tracked functions ($COUNT):" $DEVS

# Precondition: something tracked, all ok (the earlier tests left it so).
check_start() {
	[ "$COUNT" -ge 1 ] || { coco_diag "no coco directory"; return 1; }
	if [ -n "$N" ] && [ "$COUNT" -ne "$N" ]; then
		coco_diag "$COUNT coco directories, COCO_ENDPOINTS=$N"
		return 1
	fi
	coco_wait_ok 20 $DEVS
}
coco_check "every tracked function has status ok at the start" check_start

# Pick the first tracked function bound to nvme (else the first one).
for _b in $DEVS; do
	[ -z "$DEV" ] && DEV=$_b
	if [ "$(coco_driver "$_b")" = nvme ]; then
		DEV=$_b
		break
	fi
done
[ -n "$DEV" ] && coco_show "$DEV"

check_bound() {
	[ -n "$DEV" ] || return 1
	[ "$(coco_driver "$DEV")" = nvme ] && return 0
	coco_diag "$DEV: driver '$(coco_driver "$DEV")', trying to bind nvme"
	coco_write 30 "$NVME_DRV/bind" "$DEV"
	coco_poll 20 driver_is "$DEV" nvme
}
driver_is() {
	[ "$(coco_driver "$1")" = "$2" ]
}

if [ ! -d "$NVME_DRV" ]; then
	coco_diag "no nvme driver at $NVME_DRV (CONFIG_BLK_DEV_NVME)"
	ktap_test_skip "the tracked function is bound to nvme"
	ktap_test_skip "unbinding nvme succeeds and the driver link goes away"
	ktap_test_skip "coco directory stays after nvme unbind"
	ktap_test_skip "status stays ok after nvme unbind"
	ktap_test_skip "rescan works with no driver bound (succeeds, status ok, versions unchanged)"
	ktap_test_skip "binding nvme again succeeds and the driver link returns"
	ktap_test_skip "coco directory stays and status is ok after nvme rebind"
else
	coco_check "the tracked function is bound to nvme" check_bound
	VERS_BEFORE=$(coco_attr "$DEV" spdm_versions)
	FEAT_BEFORE=$(coco_attr "$DEV" doe_features)

	check_unbind() {
		[ -n "$DEV" ] || return 1
		UNBOUND=1
		coco_write 30 "$NVME_DRV/unbind" "$DEV"
		_rc=$?
		[ "$_rc" -eq 0 ] || { coco_run_diag "echo $DEV > nvme/unbind" "$_rc"; return 1; }
		coco_poll 20 driver_is "$DEV" "" && return 0
		coco_diag "$DEV: still bound to '$(coco_driver "$DEV")'"
		return 1
	}
	coco_check "unbinding nvme succeeds and the driver link goes away" check_unbind

	check_dir_stays() {
		[ -n "$DEV" ] && [ -d "$COCO_PCI/$DEV/coco" ]
	}
	coco_check "coco directory stays after nvme unbind" check_dir_stays

	check_ok_stays() {
		[ -n "$DEV" ] || return 1
		coco_all_ok "$DEV" && return 0
		coco_show "$DEV"
		return 1
	}
	coco_check "status stays ok after nvme unbind" check_ok_stays

	check_rescan_unbound() {
		[ -n "$DEV" ] || return 1
		coco_rescan "$DEV"
		_rc=$?
		[ "$_rc" -eq 0 ] || { coco_run_diag "$DEV: rescan" "$_rc"; coco_show "$DEV"; return 1; }
		if ! coco_all_ok "$DEV" ||
			[ "$(coco_attr "$DEV" spdm_versions)" != "$VERS_BEFORE" ] ||
			[ "$(coco_attr "$DEV" doe_features)" != "$FEAT_BEFORE" ]; then
			coco_diag "before: spdm_versions '$VERS_BEFORE' doe_features '$FEAT_BEFORE'"
			coco_show "$DEV"
			return 1
		fi
		return 0
	}
	coco_check "rescan works with no driver bound (succeeds, status ok, versions unchanged)" \
		check_rescan_unbound

	check_rebind() {
		[ -n "$DEV" ] || return 1
		coco_write 30 "$NVME_DRV/bind" "$DEV"
		_rc=$?
		[ "$_rc" -eq 0 ] || { coco_run_diag "echo $DEV > nvme/bind" "$_rc"; return 1; }
		coco_poll 20 driver_is "$DEV" nvme && { UNBOUND=; return 0; }
		coco_diag "$DEV: driver '$(coco_driver "$DEV")' after bind"
		return 1
	}
	coco_check "binding nvme again succeeds and the driver link returns" check_rebind

	check_after_rebind() {
		[ -n "$DEV" ] && [ -d "$COCO_PCI/$DEV/coco" ] && check_ok_stays
	}
	coco_check "coco directory stays and status is ok after nvme rebind" \
		check_after_rebind
fi

# ------------------------------------------------------------ rmmod / insmod

check_rmmod() {
	coco_rmmod
	_rc=$?
	[ "$_rc" -eq 0 ] && return 0
	coco_run_diag "rmmod coco" "$_rc"
	return 1
}
coco_check "rmmod coco succeeds" check_rmmod

check_dirs_gone() {
	coco_poll 20 coco_count_is 0 && return 0
	coco_diag "coco directories left after rmmod:" $(coco_devices)
	return 1
}
coco_check "every coco directory vanishes after rmmod" check_dirs_gone

check_module_gone() {
	coco_poll 20 coco_gone && return 0
	[ -d /sys/module/coco ] && coco_diag "/sys/module/coco still exists"
	coco_loaded && coco_diag "coco still in /proc/modules"
	return 1
}
coco_check "/sys/module/coco and the /proc/modules entry vanish after rmmod" \
	check_module_gone

coco_log_mark rebind-insmod

check_insmod() {
	coco_insmod
	_rc=$?
	[ "$_rc" -eq 0 ] && coco_loaded && return 0
	coco_run_diag "insmod $COCO_KO" "$_rc"
	return 1
}
coco_check "insmod coco succeeds" check_insmod

check_dirs_back() {
	[ "$COUNT" -ge 1 ] || return 1
	coco_poll 20 coco_count_is "$COUNT"
	_now=$(coco_devices)
	[ "$_now" = "$DEVS" ] && return 0
	coco_diag "before rmmod:" $DEVS "after insmod:" $_now
	return 1
}
coco_check "the same functions get a coco directory again after insmod" \
	check_dirs_back

check_ok_again() {
	[ "$COUNT" -ge 1 ] && coco_wait_ok 20 $DEVS
}
coco_check "status becomes ok again within 20 s on every tracked function" \
	check_ok_again

check_insmod_log() {
	[ "$COUNT" -ge 1 ] || return 1
	_log=$(coco_log_since)
	_ok=0
	for _b in $DEVS; do
		_n=$(printf '%s\n' "$_log" | grep -F "$_b" | grep -c 'coco: DOE features')
		if [ "$_n" -ne 1 ]; then
			coco_diag "$_b: $_n 'coco: DOE features' lines since insmod, wanted 1"
			_ok=1
		fi
	done
	_err=$(coco_log_since_raw | coco_log_errors)
	if [ -n "$_err" ]; then
		coco_diag "errors in the kernel log since insmod:"
		printf '%s\n' "$_err" | coco_diag_stream 40
		_ok=1
	fi
	return "$_ok"
}
coco_check "kernel log since insmod: one coco: DOE features line per function, no error" \
	check_insmod_log

ktap_finished
