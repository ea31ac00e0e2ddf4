#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# SPDM secure sessions: after the authentication every function has an
# established session ("session" reads "established") with a DHE group and
# an AEAD coco.ko offers; the kernel logged one "session established" line
# per function; a rescan ends the old session (END_SESSION) before it
# authenticates again and establishes a new one.
#
# Environment: COCO_ENDPOINTS (the rig's endpoints all support sessions).

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

ktap_set_plan 6
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
	for _f in session session_algorithms; do
		_m=$(stat -c %a "$COCO_PCI/$1/coco/$_f" 2>/dev/null)
		[ "$_m" = 444 ] || { coco_diag "$1: coco/$_f has mode '$_m', wanted 444"; return 1; }
	done
	return 0
}
coco_check "session and session_algorithms have mode 444" coco_for_all modes

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
coco_check "rescan ends the session and establishes a new one" coco_for_all rescanned

no_failure() {
	_err=$(coco_log_since_init | grep -E 'coco: (session failed|END_SESSION failed)')
	[ -z "$_err" ] && return 0
	printf '%s\n' "$_err" | coco_diag_stream 20
	return 1
}
coco_check "kernel log has no session failure" no_failure

ktap_finished
