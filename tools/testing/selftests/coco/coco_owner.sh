#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# One owner per DOE mailbox, and a session that belongs to the link.
#
# Through the debugfs test hooks (/sys/kernel/debug/coco/<BDF>/): a test TSM
# claims a device's mailbox ("relay" <- claim): coco.ko ends its own session,
# says so in coco/mailbox_owner, refuses rescan, re-authentication and
# measurements/refresh with EBUSY and sends nothing of its own, not even after
# a function reset; the TSM's data objects are relayed (a GET_VERSION comes
# back as a VERSION); only CMA/SPDM and secured objects are relayed; handing
# the mailbox back authenticates the device again and opens a new session.
# A user holding the session ("session_hold" <- 1) makes rescan,
# re-authentication and measurements/refresh fail with EBUSY and keeps the
# session; dropping the hold lets them end and re-establish it.

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

DBG=/sys/kernel/debug/coco

ktap_print_header
ktap_set_plan 9
coco_tmp_init

# The first function with an established session.
B=
for _d in $(coco_devices); do
	[ "$(coco_attr "$_d" session)" = established ] && { B=$_d; break; }
done
coco_diag "target: ${B:-none}"
H=$DBG/$B

cleanup() {
	# Leave the device as it was: mailbox back, no hold, authenticated.
	[ -n "$B" ] && {
		echo 0 >"$H/session_hold" 2>/dev/null
		echo release >"$H/relay" 2>/dev/null
		coco_wait_ok 30 >/dev/null 2>&1
	}
	coco_default_cleanup
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# dlines: "DOE features" / "authenticated" lines coco.ko logged for B so far
# (each probe logs one or the other).
probe_lines() {
	dmesg | grep -F "$B" | grep -cE 'coco: (DOE features|authenticated:|not authenticated:|authentication failed:)'
}

refused_busy() { # FILE VALUE: the write fails (EBUSY)
	! coco_write 15 "$1" "$2"
}

claimed() {
	[ -n "$B" ] && [ -w "$H/relay" ] || { coco_diag "no device with a session, or no debugfs hooks"; return 1; }
	coco_write 15 "$H/relay" claim || { coco_run_diag "claim" "$?"; return 1; }
	_o=$(coco_attr "$B" mailbox_owner)
	_s=$(coco_attr "$B" session)
	coco_diag "$B: mailbox_owner '$_o', session '$_s'"
	[ "$_o" = "tsm debugfs" ] && [ "$_s" = none ] &&
		coco_log_since | grep -F "$B" | grep -q 'coco: session ended (END_SESSION)'
}
coco_log_mark owner
coco_check "a TSM claims the mailbox: coco/mailbox_owner 'tsm debugfs', coco's session ended" claimed

quiet_while_owned() {
	_before=$(probe_lines)
	refused_busy "$COCO_PCI/$B/coco/rescan" 1 || { coco_diag "rescan accepted"; return 1; }
	refused_busy "$COCO_PCI/$B/authenticated" 1 || { coco_diag "re-authentication accepted"; return 1; }
	refused_busy "$COCO_PCI/$B/measurements/refresh" 1 || { coco_diag "refresh accepted"; return 1; }
	# A function reset queues a probe: it sends nothing while the TSM owns the mailbox.
	coco_write 30 "$COCO_PCI/$B/reset" 1 || { coco_run_diag "reset" "$?"; return 1; }
	sleep 2
	_after=$(probe_lines)
	coco_diag "$B: probe log lines $_before before, $_after after"
	[ "$_before" = "$_after" ] && [ "$(coco_attr "$B" mailbox_owner)" = "tsm debugfs" ]
}
coco_check "while the TSM owns it: rescan, authenticated, refresh fail (EBUSY); a reset sends nothing" quiet_while_owned

relayed() {
	# GET_VERSION (SPDM 1.0): 10 84 00 00; the answer is VERSION (code 0x04).
	coco_write 15 "$H/relay" "1 10840000" || { coco_run_diag "relay GET_VERSION" "$?"; return 1; }
	_r=$(cat "$H/relay")
	coco_diag "$B: relayed response $_r"
	case "$_r" in 1004*) ;; *) return 1 ;; esac
	# DOE discovery (type 0) is not relayed.
	! coco_write 15 "$H/relay" "0 00000000"
}
coco_check "the TSM's data objects are relayed (GET_VERSION -> VERSION), other object types refused" relayed

session_established() {
	[ "$(coco_attr "$B" session)" = established ]
}

released() {
	coco_write 15 "$H/relay" release || { coco_run_diag "release" "$?"; return 1; }
	coco_poll 30 session_established || true
	_o=$(coco_attr "$B" mailbox_owner)
	_a=$(cat "$COCO_PCI/$B/authenticated")
	_s=$(coco_attr "$B" session)
	coco_diag "$B after the hand-back: mailbox_owner '$_o', authenticated '$_a', session '$_s'"
	[ "$_o" = coco ] && [ "$_a" = 1 ] && [ "$_s" = established ]
}
coco_check "handing the mailbox back authenticates the device again and opens a new session" released

second_claim_refused() {
	coco_write 15 "$H/session_hold" 1 || { coco_run_diag "session_hold" "$?"; return 1; }
	[ "$(cat "$H/session_hold")" = 1 ] || return 1
	# A TSM cannot take the mailbox from under a session in use.
	! coco_write 15 "$H/relay" claim
}
coco_check "a held session: a TSM's claim is refused" second_claim_refused

held_keeps_session() {
	_m=$(coco_attr "$B" session_messages)
	refused_busy "$COCO_PCI/$B/coco/rescan" 1 || { coco_diag "rescan accepted"; return 1; }
	refused_busy "$COCO_PCI/$B/authenticated" 1 || { coco_diag "re-authentication accepted"; return 1; }
	refused_busy "$COCO_PCI/$B/measurements/refresh" 1 || { coco_diag "refresh accepted"; return 1; }
	_s=$(coco_attr "$B" session)
	coco_diag "$B: session '$_s', messages $_m"
	[ "$_s" = established ]
}
coco_check "while the session is held: rescan, authenticated, refresh fail (EBUSY), the session stays" held_keeps_session

held_session_works() {
	_k=$(coco_attr "$B" session_heartbeats)
	coco_write 15 "$COCO_PCI/$B/coco/session" heartbeat || return 1
	[ "$(coco_attr "$B" session_heartbeats)" -gt "$_k" ]
}
coco_check "the held session still carries requests" held_session_works

dropped() {
	coco_write 15 "$H/session_hold" 0 || return 1
	coco_write 30 "$COCO_PCI/$B/authenticated" 1 || { coco_run_diag "re-authentication" "$?"; return 1; }
	[ "$(coco_attr "$B" session)" = established ] && [ "$(cat "$H/session_hold")" = 0 ]
}
coco_check "without the hold, re-authentication ends and re-establishes the session" dropped

no_errors() {
	! coco_log_since | grep -F "$B" | grep -qE 'coco: (probe failed|authentication failed|session failed)'
}
coco_check "no probe, authentication or session failure logged for the device" no_errors

ktap_finished
