#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# SPDM secure sessions: after the authentication every function has an
# established session ("session" reads "established") with a DHE group and
# an AEAD coco.ko offers; the kernel logged one "session established" line
# per function; the session's counters match what the establishment sent;
# it carries application messages ("heartbeat" written to coco/session) and
# stays usable after a key update; with session_rekey_messages=5 the keys
# are updated on their own; "end" ends it (END_SESSION) and later requests
# fail with ENOTCONN; a device with a HeartbeatPeriod (variant heartbeat:N)
# is kept alive by coco.ko's own HEARTBEATs; a device with
# HANDSHAKE_IN_THE_CLEAR_CAP (variant handshake:clear) gets its FINISH in
# the clear; a rescan ends the old session (END_SESSION) before it
# authenticates again and establishes a new one.
#
# Environment: COCO_ENDPOINTS (the rig's endpoints all support sessions),
# COCO_VARIANTS (endpoints with heartbeat:N or handshake:clear, optional).

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

coco_need_endpoints "no emulated endpoints with sessions"

trap coco_default_cleanup EXIT
trap 'exit 1' INT TERM HUP

ktap_set_plan 14
coco_tmp_init

DEVS=$(coco_devices)
COUNT=$(coco_count)
coco_diag "tracked functions ($COUNT):" $DEVS

# established BDF: the session of BDF is (or becomes, within 20 s) established.
is_established() {
	[ "$(coco_attr "$1" session)" = established ]
}
established() {
	coco_poll 20 is_established "$1"
	_s=$(coco_attr "$1" session)
	[ "$_s" = established ] && return 0
	coco_diag "$1: session '$_s' (auth_status '$(coco_attr "$1" auth_status)')"
	return 1
}
coco_check "every function has an established session" coco_for_all established

algorithms() {
	_a=$(coco_attr "$1" session_algorithms)
	case "$_a" in
	"secp256r1 aes-256-gcm" | "secp384r1 aes-256-gcm" | \
		"secp256r1 chacha20-poly1305" | "secp384r1 chacha20-poly1305")
		coco_diag "$1: session_algorithms '$_a'"
		return 0 ;;
	esac
	coco_diag "$1: session_algorithms '$_a'"
	return 1
}
coco_check "session_algorithms names an offered DHE group and AEAD" coco_for_all algorithms

modes() {
	for _f in session_algorithms session_version session_handshake session_heartbeat_period \
		session_messages session_key_updates session_heartbeats; do
		_m=$(stat -c %a "$COCO_PCI/$1/coco/$_f" 2>/dev/null)
		[ "$_m" = 444 ] || { coco_diag "$1: coco/$_f has mode '$_m', wanted 444"; return 1; }
	done
	_m=$(stat -c %a "$COCO_PCI/$1/coco/session" 2>/dev/null)
	[ "$_m" = 644 ] || { coco_diag "$1: coco/session has mode '$_m', wanted 644"; return 1; }
	return 0
}
coco_check "session is 0644, the other session files 0444" coco_for_all modes

# The variant of BDF's endpoint ("" for a plain one), from COCO_VARIANTS.
variant_of() {
	for _v in $COCO_VARIANTS; do
		_i=${_v%%:*}
		[ "$(printf '0000:%02x:00.0' $((_i + 1)))" = "$1" ] && { echo "${_v#*:}"; return 0; }
	done
	echo ""
}
HB_DEV= CLEAR_DEV=
for _b in $DEVS; do
	case "$(variant_of "$_b")" in
	heartbeat:*) HB_DEV=$_b HB_PERIOD=$(variant_of "$_b" | cut -d: -f2) ;;
	handshake:clear) CLEAR_DEV=$_b ;;
	esac
done
coco_diag "heartbeat endpoint: ${HB_DEV:-none}; clear handshake endpoint: ${CLEAR_DEV:-none}"

# After the establishment: FINISH, GET_DIGESTS, two KEY_UPDATEs with their
# VerifyNewKey and a HEARTBEAT (fewer secured messages with the handshake in
# the clear: FINISH is not one); the handshake as the endpoint announced it.
counters() {
	_hs=$(coco_attr "$1" session_handshake)
	_msg=$(coco_attr "$1" session_messages)
	_ku=$(coco_attr "$1" session_key_updates)
	_hb=$(coco_attr "$1" session_heartbeats)
	_hp=$(coco_attr "$1" session_heartbeat_period)
	_sv=$(coco_attr "$1" session_version)
	coco_diag "$1: secured messages $_sv, handshake '$_hs', heartbeat period '$_hp', messages '$_msg', key updates '$_ku', heartbeats '$_hb'"
	# The endpoint selects the highest version offered (1.0 and 1.1).
	[ "$_sv" = 1.1 ] || return 1
	if [ "$1" = "$CLEAR_DEV" ]; then
		[ "$_hs" = clear ] && [ "$_msg" = 6 ] || return 1
	else
		[ "$_hs" = encrypted ] || return 1
		[ "$1" = "$HB_DEV" ] || [ "$_msg" = 7 ] || return 1
	fi
	[ "$_ku" = 2 ] || return 1
	if [ "$1" = "$HB_DEV" ]; then
		[ "$_hp" = "$HB_PERIOD" ] && [ "$_hb" -ge 1 ]
	else
		[ "$_hp" = 0 ] && [ "$_hb" = 1 ]
	fi
}
coco_check "session counters and handshake match the establishment" coco_for_all counters

# send BDF REQUEST: write REQUEST to coco/session.
send() {
	coco_write 15 "$COCO_PCI/$1/coco/session" "$2"
}

# beats BDF N: N "heartbeat" requests, each answered (one guarded run).
beats() {
	# shellcheck disable=SC2016 # expanded by the inner sh
	coco_run 60 sh -c 'i=0; while [ $i -lt "$1" ]; do echo heartbeat >"$2" || exit 1; i=$((i + 1)); done' \
		sh "$2" "$COCO_PCI/$1/coco/session" || { coco_run_diag "$1: $2 heartbeats" "$?"; return 1; }
}

# 20 HEARTBEATs carry 20 messages; no key update is due (default budget).
carries() {
	_m0=$(coco_attr "$1" session_messages) _h0=$(coco_attr "$1" session_heartbeats)
	_k0=$(coco_attr "$1" session_key_updates)
	beats "$1" 20 || return 1
	_m1=$(coco_attr "$1" session_messages) _h1=$(coco_attr "$1" session_heartbeats)
	_k1=$(coco_attr "$1" session_key_updates)
	coco_diag "$1: messages $_m0 -> $_m1, heartbeats $_h0 -> $_h1, key updates $_k0 -> $_k1"
	# The heartbeat endpoint's own keep-alives may add some.
	[ $((_h1 - _h0)) -ge 20 ] && [ $((_m1 - _m0)) -ge 20 ] && [ "$_k1" = "$_k0" ] || return 1
	[ "$1" = "$HB_DEV" ] || { [ $((_h1 - _h0)) = 20 ] && [ $((_m1 - _m0)) = 20 ]; } || return 1
	is_established "$1"
}
coco_check "a session carries 20 application messages" coco_for_all carries

# A key update (both directions, 2 messages) keeps the session usable.
key_update() {
	_m0=$(coco_attr "$1" session_messages) _k0=$(coco_attr "$1" session_key_updates)
	send "$1" key_update || { coco_run_diag "$1: key_update" "$?"; return 1; }
	send "$1" heartbeat || { coco_run_diag "$1: heartbeat after the key update" "$?"; return 1; }
	_m1=$(coco_attr "$1" session_messages) _k1=$(coco_attr "$1" session_key_updates)
	coco_diag "$1: key updates $_k0 -> $_k1, messages $_m0 -> $_m1"
	[ $((_k1 - _k0)) = 1 ] && [ $((_m1 - _m0)) -ge 3 ] && is_established "$1"
}
coco_check "a key update keeps the session usable" coco_for_all key_update

# refused BDF REQUEST ERROR: writing REQUEST fails with the strerror text ERROR.
refused() {
	send "$1" "$2" && { coco_diag "$1: '$2' was accepted"; return 1; }
	case "$COCO_RUN_OUT" in
	*"$3"*) return 0 ;;
	esac
	coco_run_diag "$1: '$2' (wanted '$3')" 1
	return 1
}
bad_request() {
	refused "$1" rekey "Invalid argument"
}
coco_check "an unknown session request fails with EINVAL" coco_for_all bad_request

# With the key budget at 5 records, 12 HEARTBEATs need at least two key
# updates of their own, and the session stays established.
rekeyed() {
	established "$1" || return 1
	_k0=$(coco_attr "$1" session_key_updates)
	beats "$1" 12 || return 1
	_k1=$(coco_attr "$1" session_key_updates)
	coco_diag "$1: key updates $_k0 -> $_k1 over 12 heartbeats (budget 5)"
	[ $((_k1 - _k0)) -ge 2 ] && is_established "$1"
}
budget() {
	coco_rmmod || { coco_run_diag "rmmod" "$?"; return 1; }
	coco_insmod session_rekey_messages=5 || { coco_run_diag "insmod session_rekey_messages=5" "$?"; return 1; }
	COUNT=$(coco_count)
	_rc=0
	coco_for_all rekeyed || _rc=1
	coco_rmmod && coco_insmod || { coco_run_diag "reload" "$?"; return 1; }
	coco_for_all established || _rc=1
	return $_rc
}
coco_check "session_rekey_messages=5 updates the keys on its own" budget

# A device with a HeartbeatPeriod ends a session that carried no request for
# twice the period: coco.ko's HEARTBEATs keep it alive over three periods
# (its keep-alives are the only traffic; the other devices send none).
kept_alive() {
	[ -n "$HB_DEV" ] || { coco_diag "no heartbeat:N endpoint"; return 1; }
	established "$HB_DEV" || return 1
	_others_before=""
	for _b in $DEVS; do
		[ "$_b" = "$HB_DEV" ] || _others_before="$_others_before $(coco_attr "$_b" session_messages)"
	done
	_h0=$(coco_attr "$HB_DEV" session_heartbeats)
	sleep $((HB_PERIOD * 3 + 1))
	_h1=$(coco_attr "$HB_DEV" session_heartbeats)
	_others_after=""
	for _b in $DEVS; do
		[ "$_b" = "$HB_DEV" ] || _others_after="$_others_after $(coco_attr "$_b" session_messages)"
	done
	coco_diag "$HB_DEV: heartbeats $_h0 -> $_h1 over $((HB_PERIOD * 3 + 1)) s; others' messages:$_others_before ->$_others_after"
	[ $((_h1 - _h0)) -ge 3 ] || return 1
	[ "$_others_before" = "$_others_after" ] || return 1
	# The device still has the session: a request inside it is answered.
	send "$HB_DEV" heartbeat || { coco_run_diag "$HB_DEV: heartbeat after the idle time" "$?"; return 1; }
	is_established "$HB_DEV"
}
coco_check "HEARTBEATs keep a session with a HeartbeatPeriod alive" kept_alive

clear_handshake() {
	[ -n "$CLEAR_DEV" ] || { coco_diag "no handshake:clear endpoint"; return 1; }
	established "$CLEAR_DEV" || return 1
	coco_log_since_init | grep "$CLEAR_DEV: coco: session established: " | tail -n 1 |
		grep -q "handshake clear" || { coco_diag "$CLEAR_DEV: no 'handshake clear' in the log"; return 1; }
	[ "$(coco_attr "$CLEAR_DEV" session_handshake)" = clear ]
}
coco_check "a device with HANDSHAKE_IN_THE_CLEAR_CAP gets its handshake in the clear" clear_handshake

# "end" ends the session (END_SESSION, logged); a request then fails with
# ENOTCONN; the session files read "none" and empty lines.
ended() {
	coco_log_mark "end-$1"
	send "$1" end || { coco_run_diag "$1: end" "$?"; return 1; }
	[ "$(coco_attr "$1" session)" = none ] || { coco_diag "$1: session '$(coco_attr "$1" session)' after end"; return 1; }
	[ -z "$(coco_attr "$1" session_messages)" ] || return 1
	coco_log_since | grep -q "$1: coco: session ended (END_SESSION)" || { coco_diag "$1: no END_SESSION line"; return 1; }
	# ENOTCONN: "Transport endpoint is not connected".
	refused "$1" heartbeat "not connected"
}
coco_check "end ends the session; later requests fail with ENOTCONN" coco_for_all ended

# One "session established" line per function since the rig loaded coco.ko.
logged() {
	_n=$(coco_log_since_init | grep -c "$1: coco: session established: ")
	[ "$_n" -ge 1 ] && return 0
	coco_diag "$1: no 'coco: session established' line in the kernel log"
	return 1
}
coco_check "kernel log has a session established line per function" coco_for_all logged

# A rescan ends the session first, then establishes a new one.
coco_log_mark session
rescanned() {
	coco_rescan "$1" 30 || { coco_run_diag "$1: rescan" "$?"; return 1; }
	established "$1" || return 1
	_log=$(coco_log_since)
	printf '%s\n' "$_log" | grep -q "$1: coco: session ended (END_SESSION)" || {
		coco_diag "$1: no END_SESSION before the new authentication"
		return 1
	}
	printf '%s\n' "$_log" | grep -q "$1: coco: session established: " || {
		coco_diag "$1: no new session after the rescan"
		return 1
	}
	return 0
}
# The sessions were ended above: the first rescan establishes new ones, the
# second ends those (END_SESSION) and establishes others.
reopened() {
	coco_rescan "$1" 30 || { coco_run_diag "$1: rescan" "$?"; return 1; }
	established "$1"
}
reopened_and_rescanned() {
	reopened "$1" && rescanned "$1"
}
coco_check "rescan ends the session and establishes a new one" coco_for_all reopened_and_rescanned

# Endpoints whose fault ends their session on purpose (coco_ide_connect.sh and
# coco_ide_refresh.sh: a K_SET_GO refused with an SPDM ERROR inside the session).
expected_failures() {
	for _ef_b in $DEVS; do
		case "+$(variant_of "$_ef_b")+" in *+fault:go-refused+* | *+fault:refresh-go-refused+*) echo "$_ef_b" ;; esac
	done
}

no_failure() {
	_skip=$(expected_failures)
	_err=$(coco_log_since_init | grep -E 'coco: (session failed|END_SESSION failed)')
	[ -n "$_skip" ] && _err=$(printf '%s\n' "$_err" | grep -vF "$_skip")
	[ -z "$_err" ] && return 0
	printf '%s\n' "$_err" | coco_diag_stream 20
	return 1
}
coco_check "kernel log has no session failure" no_failure

ktap_finished
