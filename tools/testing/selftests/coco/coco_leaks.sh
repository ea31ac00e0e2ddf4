#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Leaks and memory/locking bugs: two more rmmod/insmod cycles (with live
# and, after coco_endpoint_dead.sh, dead endpoints), then kmemleak must list
# nothing allocated by coco, and the kernel log (whole boot: this test runs
# last) must hold no KASAN report, lockdep report, Oops or WARNING.
#
# Needs CONFIG_DEBUG_KMEMLEAK, CONFIG_KASAN, CONFIG_PROVE_LOCKING (see config).
# Leaves coco.ko loaded.

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

KMEMLEAK=$COCO_DEBUGFS/kmemleak
# A dead endpoint's probe fails only after the DOE timeouts.
SETTLE_SECS=30
# A kmemleak scan walks all memory; under TCG with KASAN that takes a while.
SCAN_SECS=240

trap coco_default_cleanup EXIT
trap 'exit 1' INT TERM HUP

ktap_print_header
ktap_set_plan 13

DEVS=$(coco_devices)
COUNT=$(coco_count)
coco_diag "tracked functions ($COUNT):" $DEVS

# Functions whose status is ok now are live; those in error (the endpoint
# killed by coco_endpoint_dead.sh) are dead and only have to settle.
coco_poll "$SETTLE_SECS" coco_settled $DEVS
LIVE=
DEAD=
for _b in $DEVS; do
	case "$(coco_attr "$_b" status)" in
	ok) LIVE="$LIVE $_b" ;;
	*) DEAD="$DEAD $_b" ;;
	esac
done
LIVE=$(echo $LIVE)
DEAD=$(echo $DEAD)
coco_diag "live: '$LIVE' dead: '$DEAD'"

check_debugfs() {
	if [ ! -d "$COCO_DEBUGFS" ] || ! grep -q " $COCO_DEBUGFS debugfs " /proc/mounts; then
		mkdir -p "$COCO_DEBUGFS" 2>/dev/null
		mount -t debugfs debugfs "$COCO_DEBUGFS" 2>/dev/null ||
			grep -q " $COCO_DEBUGFS debugfs " /proc/mounts ||
			{ coco_diag "cannot mount debugfs at $COCO_DEBUGFS"; return 1; }
	fi
	return 0
}
coco_check "debugfs is mounted at /sys/kernel/debug" check_debugfs

# cycle NAME: rmmod, check everything is gone, insmod, wait for the probes.
cycle() {
	coco_rmmod
	_rc=$?
	if [ "$_rc" -ne 0 ]; then
		coco_run_diag "$1: rmmod coco" "$_rc"
		return 1
	fi
	if ! coco_poll 20 coco_count_is 0 || ! coco_poll 20 coco_gone; then
		coco_diag "$1: coco directories or /sys/module/coco left after rmmod"
		return 1
	fi
	coco_insmod
	_rc=$?
	if [ "$_rc" -ne 0 ]; then
		coco_run_diag "$1: insmod $COCO_KO" "$_rc"
		return 1
	fi
	coco_poll 20 coco_count_is "$COUNT"
	if [ "$(coco_devices)" != "$DEVS" ]; then
		coco_diag "$1: tracked after insmod:" $(coco_devices) "before:" $DEVS
		return 1
	fi
	coco_poll "$SETTLE_SECS" coco_settled $DEVS
	_ok=0
	for _b in $LIVE; do
		coco_all_ok "$_b" || { coco_diag "$1: live function not ok"; coco_show "$_b"; _ok=1; }
	done
	for _b in $DEAD; do
		coco_settled "$_b" || { coco_diag "$1: dead function still pending"; coco_show "$_b"; _ok=1; }
	done
	return "$_ok"
}
check_cycle1() {
	[ "$COUNT" -ge 1 ] || { coco_diag "no coco directory"; return 1; }
	cycle "first cycle"
}
check_cycle2() {
	[ "$COUNT" -ge 1 ] || return 1
	cycle "second cycle"
}
coco_check "first rmmod/insmod cycle: everything goes and comes back, live functions ok" \
	check_cycle1
coco_check "second rmmod/insmod cycle: everything goes and comes back, live functions ok" \
	check_cycle2

# ------------------------------------------------------------------ kmemleak

REPORT=
check_kmemleak_scan() {
	_rc=0
	for _i in 1 2; do
		[ "$_i" -eq 2 ] && sleep 6
		coco_write "$SCAN_SECS" "$KMEMLEAK" scan
		_rc=$?
		[ "$_rc" -eq 0 ] || { coco_run_diag "scan $_i: echo scan > $KMEMLEAK" "$_rc"; return 1; }
	done
	REPORT=$(cat "$KMEMLEAK" 2>&1) || { coco_diag "cat $KMEMLEAK: $REPORT"; REPORT=; return 1; }
	return 0
}

# The report, one object a record: "unreferenced object 0x... (size N):",
# comm/jiffies, hex dump, "backtrace (crc ...):", frames "[<addr>] sym+off/len [mod]".
# An object counts as coco's if a frame names coco (module tag, or the Rust
# crate in a mangled symbol) or is an unresolved address: the frames of an
# unloaded module (the earlier coco instances) no longer resolve to a symbol.
coco_objects() {
	printf '%s\n' "$REPORT" | awk '
		function flush() {
			if (rec != "" && hit) { printf "%s", rec; n++ }
			rec = ""; hit = 0
		}
		/^unreferenced object / { flush() }
		{ rec = rec $0 "\n" }
		/^ +\[<[0-9a-f]+>\]/ && (/coco/ || /\] 0x[0-9a-f]+$/) { hit = 1 }
		END { flush() }'
}

KMEMLEAK_OK=
if [ ! -e "$KMEMLEAK" ]; then
	coco_diag "$KMEMLEAK does not exist (CONFIG_DEBUG_KMEMLEAK off?)"
	ktap_test_skip "kmemleak: two scans 6 s apart complete"
	ktap_test_skip "kmemleak: no leaked object allocated by coco (named or in an unloaded module)"
	ktap_test_skip "kmemleak: no unreferenced object at all (any subsystem)"
else
	coco_check "kmemleak: two scans 6 s apart complete" check_kmemleak_scan && KMEMLEAK_OK=1
	check_no_coco_leak() {
		[ -n "$KMEMLEAK_OK" ] || return 1
		_objs=$(coco_objects)
		[ -z "$_objs" ] && return 0
		coco_diag "kmemleak objects allocated by coco:"
		printf '%s\n' "$_objs" | coco_diag_stream 300
		return 1
	}
	coco_check "kmemleak: no leaked object allocated by coco (named or in an unloaded module)" \
		check_no_coco_leak
	check_no_leak_at_all() {
		[ -n "$KMEMLEAK_OK" ] || return 1
		_n=$(printf '%s\n' "$REPORT" | grep -c '^unreferenced object ')
		[ "$_n" -eq 0 ] && return 0
		coco_diag "kmemleak lists $_n unreferenced objects:"
		printf '%s\n' "$REPORT" | coco_diag_stream 300
		return 1
	}
	coco_check "kmemleak: no unreferenced object at all (any subsystem)" \
		check_no_leak_at_all
fi

# ------------------------------------------------------------------ kernel log

# The log since the rig's /init started (see coco_log_since_init): reports
# from early boot, before any coco code ran, are the rig's to report.
LOG=$(coco_log_since_init)

# no_lines DESCRIPTION-OF-WHAT ERE: that kernel log has no line matching ERE.
no_lines() {
	_nl=$(printf '%s\n' "$LOG" | grep -E "$2")
	[ -z "$_nl" ] && return 0
	coco_diag "$1 in the kernel log:"
	printf '%s\n' "$LOG" | grep -E -A 25 "$2" | coco_diag_stream 150
	return 1
}
check_kasan() { no_lines "KASAN report" 'BUG: KASAN'; }
check_lockdep() {
	no_lines "lockdep report" \
		'WARNING: possible|WARNING: inconsistent lock state|WARNING: bad unlock balance|WARNING: suspicious RCU usage|WARNING: lock held when returning|WARNING: held lock freed|BUG: held lock freed|BUG: MAX_LOCK'
}
check_oops() { no_lines "Oops" 'Oops'; }
check_warning_cpu() { no_lines "WARNING" 'WARNING: CPU'; }
check_other_bug() {
	no_lines "BUG or panic" 'BUG: [^K]|BUG: K[^A]|kernel BUG at|panicked at|general protection fault'
}
check_hung() { no_lines "hung task or lockup" 'INFO: task .* blocked for more than|BUG: soft lockup|rcu_sched detected stalls|rcu: INFO: .* detected stalls'; }
check_debug_disabled() {
	no_lines "debug facility shut down" 'kmemleak: Kernel memory leak detector disabled|kmemleak: Cannot allocate|turning off the locking correctness validator'
}

coco_check "kernel log has no BUG: KASAN report" check_kasan
coco_check "kernel log has no lockdep report (WARNING: possible ... and the like)" check_lockdep
coco_check "kernel log has no Oops" check_oops
coco_check "kernel log has no WARNING: CPU line" check_warning_cpu
coco_check "kernel log has no other BUG, kernel BUG or Rust panic" check_other_bug
coco_check "kernel log has no hung task, soft lockup or RCU stall" check_hung
coco_check "kmemleak and lockdep stayed enabled (no shut-down message)" check_debug_disabled

ktap_finished
