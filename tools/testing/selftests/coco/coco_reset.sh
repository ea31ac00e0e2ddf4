#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# A reset or a resume withdraws a device's authentication at once and
# authenticates it again: results from before a reset are never shown as
# current. Function reset through sysfs "reset"; resume through system
# suspend-to-idle with /sys/power/pm_test=devices (devices are suspended and
# resumed, the machine does not sleep).

# Lists of BDFs are split on purpose: a BDF has no blank and no glob character.
# shellcheck disable=SC2086

DIR=$(dirname "$0")
for _f in "$DIR/../kselftest/ktap_helpers.sh" "$DIR/coco_lib.sh"; do
	[ -r "$_f" ] || { printf 'TAP version 13\nBail out! missing %s\n' "$_f"; exit 1; }
done
# shellcheck source=/dev/null
. "$DIR/../kselftest/ktap_helpers.sh"
# shellcheck source=coco_lib.sh
. "$DIR/coco_lib.sh"

N=${COCO_ENDPOINTS:-}

cleanup() {
	[ -w /sys/power/pm_test ] && echo none >/sys/power/pm_test 2>/dev/null
	coco_default_cleanup
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

ktap_print_header
ktap_set_plan 6
coco_tmp_init

DEVS=$(coco_devices)
COUNT=$(coco_count)
B=$(echo $DEVS | cut -d' ' -f1)
coco_diag "tracked functions ($COUNT):" $DEVS "reset target: ${B:-none}"

dev_attr() {
	cat "$COCO_PCI/$1/$2" 2>/dev/null
}

# auth_lines BDF: number of "coco: authenticated" lines for BDF so far.
auth_lines() {
	dmesg | grep -F "$1" | grep -c 'coco: authenticated: '
}

all_authenticated() {
	for _b in "$@"; do
		[ "$(dev_attr "$_b" authenticated)" = 1 ] || return 1
	done
}

coco_log_mark reset
BEFORE=$(auth_lines "$B")
check_reset() {
	[ -n "$B" ] && [ -w "$COCO_PCI/$B/reset" ] || { coco_diag "no resettable function"; return 1; }
	coco_diag "$B: reset methods '$(cat "$COCO_PCI/$B/reset_method" 2>/dev/null)'"
	coco_write 30 "$COCO_PCI/$B/reset" 1 || { coco_run_diag "echo 1 > reset" "$?"; return 1; }
	# The notifier ran inside the write: the withdrawal is logged by now.
	coco_log_since | grep -F "$B" | grep -qF 'coco: device reset: re-authenticating' && return 0
	coco_diag "no 'device reset: re-authenticating' line for $B"
	return 1
}
coco_check "function reset: the authentication is withdrawn (logged)" check_reset

check_reauth() {
	coco_poll 30 all_authenticated "$B" || {
		coco_diag "$B: authenticated '$(dev_attr "$B" authenticated)', auth_status '$(coco_attr "$B" auth_status)'"
		return 1
	}
	_after=$(auth_lines "$B")
	[ "$_after" -gt "$BEFORE" ] && return 0
	coco_diag "$B: $BEFORE 'coco: authenticated' lines before the reset, $_after after"
	return 1
}
coco_check "function reset: the device is authenticated again by a new run" check_reauth

check_other_untouched() {
	for _b in $DEVS; do
		[ "$_b" = "$B" ] && continue
		if coco_log_since | grep -F "$_b" | grep -qF 'coco: device reset'; then
			coco_diag "$_b was not reset but was re-authenticated"
			return 1
		fi
	done
	return 0
}
coco_check "function reset: the other functions keep their authentication" check_other_untouched

# --- resume ---------------------------------------------------------------
can_suspend() {
	[ -w /sys/power/pm_test ] && grep -qw freeze /sys/power/state
}
coco_log_mark resume
suspend_resume() {
	can_suspend || { coco_diag "no /sys/power/pm_test or no freeze state"; return 1; }
	[ -w /sys/module/suspend/parameters/pm_test_delay ] &&
		echo 1 >/sys/module/suspend/parameters/pm_test_delay
	echo devices >/sys/power/pm_test || return 1
	coco_write 60 /sys/power/state freeze
	_rc=$?
	echo none >/sys/power/pm_test
	[ "$_rc" -eq 0 ] || { coco_run_diag "echo freeze > /sys/power/state" "$_rc"; return 1; }
	_rc=0
	for _b in $DEVS; do
		coco_log_since | grep -F "$_b" | grep -qF 'coco: device resumed: re-authenticating' || {
			coco_diag "no 'device resumed: re-authenticating' line for $_b"
			_rc=1
		}
	done
	[ "$COUNT" -ge 1 ] && return "$_rc"
}
coco_check "suspend/resume (pm_test=devices): every authentication is withdrawn (logged)" suspend_resume

check_resumed() {
	coco_poll 60 all_authenticated $DEVS && [ "$COUNT" -ge 1 ] && return 0
	for _b in $DEVS; do
		coco_diag "$_b: authenticated '$(dev_attr "$_b" authenticated)', auth_status '$(coco_attr "$_b" auth_status)'"
	done
	return 1
}
coco_check "after resume every function is authenticated again" check_resumed

check_log_clean() {
	_err=$(coco_log_since_raw | coco_log_errors)
	[ -z "$_err" ] && return 0
	printf '%s\n' "$_err" | coco_diag_stream 20
	return 1
}
coco_check "no error or splat in the kernel log across suspend/resume" check_log_clean

ktap_finished
