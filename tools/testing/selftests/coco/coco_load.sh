#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# coco.ko is loaded and tracks exactly the emulated endpoints: every NVMe
# function with a CMA DOE mailbox gets a coco directory, nothing else does,
# and the module logged one "coco: DOE features" line per function.
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

N=${COCO_ENDPOINTS:-}

ktap_print_header
ktap_set_plan 10

coco_check "module coco is loaded (/sys/module/coco exists)" \
	test -d /sys/module/coco

coco_check "module coco is listed in /proc/modules" coco_loaded

# The rig loads the module just before the tests: give the directories time.
if [ -n "$N" ]; then
	coco_poll 20 coco_count_is "$N"
fi
DEVS=$(coco_devices)
COUNT=$(coco_count)
coco_diag "tracked functions ($COUNT):" $DEVS

if [ -n "$N" ]; then
	if [ "$COUNT" -eq "$N" ]; then
		ktap_test_pass "exactly COCO_ENDPOINTS functions have a coco directory"
	else
		coco_diag "found $COUNT coco directories, COCO_ENDPOINTS=$N"
		ktap_test_fail "exactly COCO_ENDPOINTS functions have a coco directory"
	fi
else
	coco_diag "COCO_ENDPOINTS is not set"
	ktap_test_skip "exactly COCO_ENDPOINTS functions have a coco directory"
fi

check_tracked_are_nvme() {
	[ "$COUNT" -ge 1 ] || { coco_diag "no coco directory at all"; return 1; }
	_ok=0
	for _b in $DEVS; do
		if ! coco_is_nvme "$_b"; then
			coco_diag "$_b has a coco directory but class $(coco_class "$_b")"
			_ok=1
		fi
	done
	return "$_ok"
}
coco_check "every coco directory is on an NVMe function (class 0x010802)" \
	check_tracked_are_nvme

check_others_untracked() {
	_ok=0
	_scanned=0
	_bridges=0
	for _d in "$COCO_PCI"/*; do
		_b=${_d##*/}
		coco_is_nvme "$_b" && continue
		_scanned=$((_scanned + 1))
		case "$(coco_class "$_b")" in
		0x0604*) _bridges=$((_bridges + 1)) ;;
		esac
		if [ -e "$_d/coco" ]; then
			coco_diag "non-NVMe function $_b (class $(coco_class "$_b")) has a coco directory"
			_ok=1
		fi
	done
	coco_diag "scanned $_scanned non-NVMe functions, $_bridges of them PCI bridges or root ports"
	# Each endpoint sits behind its own root port: there must be some.
	if [ "$_bridges" -lt 1 ]; then
		coco_diag "no root port found: the scan saw no non-NVMe function worth the name"
		_ok=1
	fi
	return "$_ok"
}
coco_check "no non-NVMe function (root ports, host bridge, others) has a coco directory" \
	check_others_untracked

check_attr_files() {
	[ "$COUNT" -ge 1 ] || return 1
	_ok=0
	for _b in $DEVS; do
		for _f in spdm_versions doe_features status rescan; do
			if [ ! -f "$COCO_PCI/$_b/coco/$_f" ]; then
				coco_diag "$_b: coco/$_f is missing"
				_ok=1
			fi
		done
	done
	return "$_ok"
}
coco_check "every coco directory has spdm_versions, doe_features, status and rescan" \
	check_attr_files

check_settled() {
	[ "$COUNT" -ge 1 ] || return 1
	if ! coco_poll 20 coco_settled $DEVS; then
		for _b in $DEVS; do
			coco_settled "$_b" || coco_diag "$_b: status '$(coco_attr "$_b" status)' after 20 s"
		done
		return 1
	fi
	return 0
}
coco_check "the asynchronous probe finished on every tracked function within 20 s" \
	check_settled

check_status_ok() {
	[ "$COUNT" -ge 1 ] || return 1
	_ok=0
	for _b in $DEVS; do
		coco_all_ok "$_b" || { coco_show "$_b"; _ok=1; }
	done
	return "$_ok"
}
coco_check "status is ok on every tracked function" check_status_ok

LOG=$(dmesg)

check_log_lines() {
	[ "$COUNT" -ge 1 ] || return 1
	_ok=0
	_total=$(printf '%s\n' "$LOG" | grep -c 'coco: DOE features')
	for _b in $DEVS; do
		_n=$(printf '%s\n' "$LOG" | grep -F "$_b" | grep -c 'coco: DOE features')
		if [ "$_n" -ne 1 ]; then
			coco_diag "$_b: $_n 'coco: DOE features' lines in the kernel log, wanted 1"
			_ok=1
		fi
	done
	if [ "$_total" -ne "$COUNT" ]; then
		coco_diag "$_total 'coco: DOE features' lines in all for $COUNT tracked functions"
		_ok=1
	fi
	printf '%s\n' "$LOG" | grep 'coco: DOE features' | coco_diag_stream 20
	return "$_ok"
}
coco_check "kernel log has one coco: DOE features line per tracked function" \
	check_log_lines

check_no_probe_failure() {
	_fails=$(printf '%s\n' "$LOG" | grep 'coco: probe failed')
	[ -z "$_fails" ] && return 0
	printf '%s\n' "$_fails" | coco_diag_stream 20
	return 1
}
coco_check "kernel log has no coco: probe failed line" check_no_probe_failure

ktap_finished
