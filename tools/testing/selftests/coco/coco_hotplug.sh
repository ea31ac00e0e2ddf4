#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# PCIe hot-unplug and hot-plug of the last endpoint (qdev id
# coco-nvme<N-1>): its function and coco directory go away cleanly, the
# others are untouched, and when it is plugged back it is probed again.
#
# Needs the host: prints "@@coco-host device_del coco-nvme<N-1>" and
# "@@coco-host device_add <N-1>" on stdout.
#
# Environment: COCO_ENDPOINTS (number of emulated endpoints),
# COCO_EXPECTED_VERSIONS (optional).

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

# pciehp waits 5 s after an attention button press before powering the slot
# off, and TCG is slow: allow 30 s for each direction.
UNPLUG_SECS=30
PLUG_SECS=30

coco_need_endpoints "no host to hot-plug endpoints"

LAST=$((N - 1))
GONE=
PLUGGED_BACK=

trap coco_default_cleanup EXIT
trap 'exit 1' INT TERM HUP

ktap_set_plan 11

DEVS=$(coco_devices)
COUNT=$(coco_count)
coco_diag "tracked functions ($COUNT):" $DEVS

coco_check "all COCO_ENDPOINTS functions are tracked with status ok before unplug" \
	coco_start_all_ok

# missing_dev: print the first BDF of DEVS whose PCI directory is gone.
missing_dev() {
	for _md_b in $DEVS; do
		[ -e "$COCO_PCI/$_md_b" ] || { echo "$_md_b"; return 0; }
	done
	return 1
}
some_dev_gone() {
	missing_dev >/dev/null
}

coco_log_mark hotplug-unplug
coco_diag "asking the host to unplug coco-nvme$LAST"
coco_host device_del "coco-nvme$LAST"

check_unplugged() {
	[ "$COUNT" -ge 1 ] || return 1
	if coco_poll "$UNPLUG_SECS" some_dev_gone; then
		GONE=$(missing_dev)
		coco_diag "unplugged function: $GONE"
		return 0
	fi
	coco_diag "no tracked function disappeared within $UNPLUG_SECS s"
	return 1
}
coco_check "the unplugged function's PCI directory disappears" check_unplugged

check_count_after_unplug() {
	# Give pciehp time to finish with the whole slot before counting.
	coco_poll 10 coco_count_is $((COUNT - 1))
	_now=$(coco_count)
	[ "$_now" -eq $((COUNT - 1)) ] && return 0
	coco_diag "$_now coco directories after unplug, wanted $((COUNT - 1))"
	return 1
}
coco_check "exactly one coco directory less after unplug" check_count_after_unplug

check_others_ok() {
	_ok=0
	for _b in $DEVS; do
		[ "$_b" = "$GONE" ] && continue
		[ -d "$COCO_PCI/$_b/coco" ] || { coco_diag "$_b: coco directory gone too"; _ok=1; continue; }
		coco_all_ok "$_b" || { coco_show "$_b"; _ok=1; }
	done
	[ -n "$GONE" ] && return "$_ok"
	return 1
}
coco_check "the other tracked functions keep status ok" check_others_ok

check_unplug_log() {
	_err=$(coco_log_since_raw | coco_log_errors)
	[ -z "$_err" ] && return 0
	coco_diag "errors in the kernel log since the unplug request:"
	printf '%s\n' "$_err" | coco_diag_stream 40
	return 1
}
coco_check "kernel log shows no error during unplug" check_unplug_log

coco_log_mark hotplug-plug
coco_diag "asking the host to plug endpoint $LAST back"
coco_host device_add "$LAST"

# back_dev: print the BDF of a tracked function that was not tracked after
# the unplug (the re-added one).
back_dev() {
	for _bd_b in $(coco_devices); do
		case " $(echo $SURVIVORS) " in
		*" $_bd_b "*) ;;
		*) echo "$_bd_b"; return 0 ;;
		esac
	done
	return 1
}
some_dev_back() {
	back_dev >/dev/null
}
SURVIVORS=
for _b in $DEVS; do
	[ "$_b" = "$GONE" ] || SURVIVORS="$SURVIVORS $_b"
done

check_plugged() {
	if coco_poll "$PLUG_SECS" some_dev_back; then
		PLUGGED_BACK=$(back_dev)
		coco_diag "plugged back function: $PLUGGED_BACK"
		return 0
	fi
	coco_diag "no new coco directory within $PLUG_SECS s of the device_add request"
	return 1
}
coco_check "a coco directory appears for the plugged-back function" check_plugged

check_same_bdf() {
	[ -n "$PLUGGED_BACK" ] && [ "$PLUGGED_BACK" = "$GONE" ] && return 0
	coco_diag "unplugged '$GONE', plugged back '$PLUGGED_BACK'"
	return 1
}
coco_check "it comes back at the same BDF (same root port)" check_same_bdf

check_back_ok() {
	[ -n "$PLUGGED_BACK" ] || return 1
	coco_is_nvme "$PLUGGED_BACK" || { coco_diag "$PLUGGED_BACK: class $(coco_class "$PLUGGED_BACK")"; return 1; }
	coco_wait_ok 20 "$PLUGGED_BACK"
}
coco_check "the plugged-back NVMe function reaches status ok within 20 s" check_back_ok

check_back_versions() {
	[ -n "$PLUGGED_BACK" ] || return 1
	_v=$(coco_attr "$PLUGGED_BACK" spdm_versions)
	_want=${COCO_EXPECTED_VERSIONS:-}
	if [ -z "$_want" ]; then
		# Without the variable, any surviving endpoint serves the same versions.
		for _b in $SURVIVORS; do
			_want=$(coco_attr "$_b" spdm_versions)
			break
		done
	fi
	[ -n "$_v" ] && { [ -z "$_want" ] || [ "$_v" = "$_want" ]; } && return 0
	coco_diag "$PLUGGED_BACK: spdm_versions '$_v', expected '$_want'"
	return 1
}
coco_check "the plugged-back function reports the expected spdm_versions" \
	check_back_versions

check_plug_log() {
	[ -n "$PLUGGED_BACK" ] || return 1
	_ok=0
	_n=$(coco_log_since | grep -F "$PLUGGED_BACK" | grep -c 'coco: DOE features')
	if [ "$_n" -ne 1 ]; then
		coco_diag "$PLUGGED_BACK: $_n 'coco: DOE features' lines since device_add, wanted 1"
		_ok=1
	fi
	_err=$(coco_log_since_raw | coco_log_errors)
	if [ -n "$_err" ]; then
		coco_diag "errors in the kernel log since the plug request:"
		printf '%s\n' "$_err" | coco_diag_stream 40
		_ok=1
	fi
	return "$_ok"
}
coco_check "kernel log since plug: one coco: DOE features line, no error" \
	check_plug_log

check_count_back() {
	coco_count_is "$COUNT" && [ "$(coco_devices)" = "$DEVS" ] && return 0
	coco_diag "tracked now:" $(coco_devices) "before:" $DEVS
	return 1
}
coco_check "the same set of functions is tracked as before the unplug" \
	check_count_back

ktap_finished
