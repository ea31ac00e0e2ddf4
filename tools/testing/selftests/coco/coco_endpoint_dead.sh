#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# An endpoint that stops answering: the host kills the process serving the
# DOE mailbox of endpoint 0 (variant endpoints come last and stay alive for
# coco_auth_faults.sh). A rescan of that function must then fail
# (bounded), leave status "error: ..." and an empty spdm_versions, log
# "coco: probe failed", and leave the module and the other endpoints alone.
#
# Breaks the endpoint for good: run it after every other device test.
#
# Needs the host: prints "@@coco-host kill_endpoint 0" on stdout.
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

DEAD_SECS=30

coco_need_endpoints "no host to kill an endpoint"

LAST=0
DEAD=
ALIVE=

trap coco_default_cleanup EXIT
trap 'exit 1' INT TERM HUP

ktap_set_plan 10

DEVS=$(coco_devices)
COUNT=$(coco_count)
coco_diag "tracked functions ($COUNT):" $DEVS

coco_check "all COCO_ENDPOINTS functions are tracked with status ok before the kill" \
	coco_start_all_ok

coco_log_mark endpoint-dead
coco_diag "asking the host to kill endpoint $LAST"
coco_host kill_endpoint "$LAST"

# We cannot tell from the guest which BDF is endpoint 0: rescan every
# function that still answers until one of them stops answering. Each rescan
# is bounded to 15 s; the loop stops starting new rounds after DEAD_SECS.
find_dead() {
	_fd_deadline=$(($(coco_now) + DEAD_SECS))
	_fd_round=0
	while :; do
		_fd_round=$((_fd_round + 1))
		for _fd_b in $DEVS; do
			coco_rescan "$_fd_b"
			_fd_rc=$?
			if [ "$_fd_rc" -ne 0 ]; then
				coco_run_diag "round $_fd_round: $_fd_b: rescan" "$_fd_rc"
				DEAD="$DEAD $_fd_b"
			fi
		done
		[ -n "$DEAD" ] && return 0
		[ "$(coco_now)" -ge "$_fd_deadline" ] && return 1
		sleep 1
	done
}

check_rescan_fails() {
	[ "$COUNT" -ge 1 ] || return 1
	find_dead && return 0
	coco_diag "every rescan still succeeded after $DEAD_SECS s"
	return 1
}
coco_check "rescan of the killed endpoint's function fails within $DEAD_SECS s" \
	check_rescan_fails

DEAD=$(echo $DEAD)
for _b in $DEVS; do
	case " $DEAD " in
	*" $_b "*) ;;
	*) ALIVE="$ALIVE $_b" ;;
	esac
done
ALIVE=$(echo $ALIVE)
coco_diag "dead: '$DEAD' alive: '$ALIVE'"

check_one_dead() {
	set -- $DEAD
	[ "$#" -eq 1 ] && return 0
	coco_diag "$# functions failed their rescan, wanted exactly 1"
	return 1
}
coco_check "exactly one function lost its endpoint" check_one_dead

# The dead function (the first one, if several failed).
D=${DEAD%% *}
[ -n "$D" ] && coco_show "$D"

check_status_error() {
	[ -n "$D" ] || return 1
	case "$(coco_attr "$D" status)" in
	"error: "?*) return 0 ;;
	esac
	coco_diag "$D: status '$(coco_attr "$D" status)', wanted 'error: <reason>'"
	return 1
}
coco_check "status of the dead function starts with error:" check_status_error

check_versions_empty() {
	[ -n "$D" ] && [ -d "$COCO_PCI/$D/coco" ] || return 1
	_v=$(coco_attr "$D" spdm_versions)
	_lines=$(wc -l <"$COCO_PCI/$D/coco/spdm_versions")
	[ -z "$_v" ] && [ "$_lines" -eq 1 ] && return 0
	coco_diag "$D: spdm_versions '$_v' ($_lines lines), wanted one empty line"
	return 1
}
coco_check "spdm_versions of the dead function is an empty line" check_versions_empty

check_log_failed() {
	[ -n "$D" ] || return 1
	_l=$(coco_log_since | grep -F "$D" | grep 'coco: probe failed')
	if [ -n "$_l" ]; then
		printf '%s\n' "$_l" | coco_diag_stream 5
		return 0
	fi
	coco_diag "no '$D ... coco: probe failed' line since the kill"
	return 1
}
coco_check "kernel log has a coco: probe failed line for the dead function" \
	check_log_failed

check_still_dead() {
	[ -n "$D" ] || return 1
	coco_rescan "$D"
	_rc=$?
	case "$(coco_attr "$D" status)" in
	"error: "?*) ;;
	*) coco_show "$D"; return 1 ;;
	esac
	[ "$_rc" -ne 0 ] && ! coco_timed_out "$_rc" && return 0
	coco_run_diag "$D: second rescan" "$_rc"
	return 1
}
coco_check "a second rescan of the dead function fails within 15 s and keeps status error" \
	check_still_dead

check_module() {
	[ -d /sys/module/coco ] && coco_loaded && [ -d "$COCO_PCI/$D/coco" ]
}
coco_check "module still loaded and the dead function still tracked" check_module

check_alive() {
	_ok=0
	for _b in $ALIVE; do
		coco_rescan "$_b"
		_rc=$?
		[ "$_rc" -eq 0 ] || { coco_run_diag "$_b: rescan" "$_rc"; _ok=1; }
		coco_all_ok "$_b" || { coco_show "$_b"; _ok=1; }
	done
	return "$_ok"
}
if [ "$N" -gt 1 ]; then
	coco_check "the other endpoints still rescan with status ok" check_alive
else
	ktap_test_skip "the other endpoints still rescan with status ok"
fi

check_no_splat() {
	_s=$(coco_log_since | grep -E "$COCO_SPLAT_RE")
	[ -z "$_s" ] && return 0
	printf '%s\n' "$_s" | coco_diag_stream 40
	return 1
}
coco_check "no kernel splat (BUG, WARNING, Oops) since the kill" check_no_splat

ktap_finished
