#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Key refresh of the native IDE backend's stream (coco/ide "refresh"): fresh
# keys in the other key set on both ends, in go on the receivers before the
# transmitters, then the old set stopped, without taking the stream down.
#  - refresh without a stream fails (ENOTCONN);
#  - a refresh keeps both ends enabled with the same Stream ID and Secure,
#    flips coco/ide_key_set and counts in coco/ide_refreshes; the root port's
#    key interface (GO_STATE, read through its VSEC) shows the new key set in
#    use on its transmitters and only that set in go (the old one stopped);
#  - a second refresh goes back to key set 0;
#  - ide_refresh_secs=1 refreshes a connected stream periodically, and coco.ko
#    unloads cleanly with that refresh pending;
#  - endpoint faults: a KEY_PROG refused for the new set (fault:refresh-kp-fail)
#    leaves the stream Secure on its old keys; a transmitter's K_SET_GO refused
#    after another transmitter switched (fault:refresh-go-refused) takes the
#    stream down with the reason, nothing left enabled.
#
# Needs the rig's tee-io platform; skips otherwise. Endpoint i is the NVMe
# function on bus i+1.

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
N=${COCO_ENDPOINTS:-1}

ktap_print_header
EP=$(ep_bdf 0)
D=$COCO_PCI/$EP
need_ide_endpoint "$EP"
RP=$(rp_of "$EP")
VSEC=$(ext_cap "$RP" $PCI_EXT_CAP_ID_VNDR 0xc0c0)

KPFAIL= GOFAIL=
i=0
while [ "$i" -lt "$N" ]; do
	case "+$(variant_of "$i")+" in
	*+fault:refresh-kp-fail+*) KPFAIL=$(ep_bdf "$i") ;;
	*+fault:refresh-go-refused+*) GOFAIL=$(ep_bdf "$i") ;;
	esac
	i=$((i + 1))
done

ktap_set_plan 6
coco_wait_ok 60 "$EP" || coco_diag "$EP is not ok"
coco_log_mark ide-refresh

# ends_secure BDF ID: both ends' enabled block has Stream ID ID and reads Secure.
ends_secure() {
	for _es_d in "$1" "$(rp_of "$1")"; do
		_es_cap=$(ext_cap "$_es_d" $PCI_EXT_CAP_ID_IDE)
		_es_n=$(nr_sel "$_es_d" "$_es_cap")
		_es_i=0 _es_ok=
		while [ "$_es_i" -lt "$_es_n" ]; do
			_es_b=$(sel_block "$_es_d" "$_es_cap" "$_es_i")
			_es_c=$(cfg_rdn "$_es_d" $((_es_b + 4)))
			if [ $((_es_c & IDE_SEL_EN)) -ne 0 ] && [ $(((_es_c >> 24) & 0xff)) -eq "$2" ] &&
				[ "$(sel_status "$_es_d" "$_es_b")" -eq "$IDE_SECURE" ]; then
				_es_ok=1
			fi
			_es_i=$((_es_i + 1))
		done
		[ -n "$_es_ok" ] || { coco_diag "$_es_d: no enabled Secure block with Stream ID $2"; return 1; }
	done
}

# any_enabled BDF: some selective block of BDF is enabled.
any_enabled() {
	_ae_cap=$(ext_cap "$1" $PCI_EXT_CAP_ID_IDE)
	_ae_n=$(nr_sel "$1" "$_ae_cap")
	_ae_i=0
	while [ "$_ae_i" -lt "$_ae_n" ]; do
		_ae_b=$(sel_block "$1" "$_ae_cap" "$_ae_i")
		[ $(($(cfg_rdn "$1" $((_ae_b + 4))) & IDE_SEL_EN)) -ne 0 ] && return 0
		_ae_i=$((_ae_i + 1))
	done
	return 1
}

# go_state ID: the root port's GO_STATE for Stream ID ID (CTRL written with
# no command selects the stream).
go_state() {
	cfg_wr "$RP" $((VSEC + 8)) "$1"
	printf '%#x\n' "$(cfg_rdn "$RP" $((VSEC + 0x38)))"
}

not_connected() {
	if coco_write 15 "$D/coco/ide" refresh; then
		coco_diag "refresh accepted without a stream"
		return 1
	fi
	case "$(coco_attr "$EP" ide)" in "connected"*) return 1 ;; esac
}
coco_check "refresh without a stream is refused" not_connected

# refreshed WANT_SET WANT_COUNT WANT_GO: one refresh, then the expected key
# set, count and root-port GO_STATE, both ends still Secure on the same ID.
refreshed() {
	_r_id=$(coco_attr "$EP" ide_stream_id)
	coco_write 30 "$D/coco/ide" refresh || { coco_run_diag "refresh" "$?"; return 1; }
	_r_set=$(coco_attr "$EP" ide_key_set)
	_r_n=$(coco_attr "$EP" ide_refreshes)
	_r_go=$(go_state "$_r_id")
	coco_diag "$EP: stream $_r_id -> $(coco_attr "$EP" ide_stream_id), key set $_r_set, refreshes $_r_n, state '$(coco_attr "$EP" ide_state)', root port GO_STATE $_r_go"
	[ "$(coco_attr "$EP" ide_stream_id)" = "$_r_id" ] && ends_secure "$EP" "$_r_id" &&
		[ "$(coco_attr "$EP" ide_state)" = secure ] &&
		[ "$_r_set" = "$1" ] && [ "$_r_n" = "$2" ] && [ "$_r_go" = "$3" ]
}

first() {
	[ "$VSEC" -ne 0 ] || { coco_diag "$RP: no key interface VSEC"; return 1; }
	coco_write 30 "$D/coco/ide" connect || { coco_run_diag "connect" "$?"; return 1; }
	_f_go=$(go_state "$(coco_attr "$EP" ide_stream_id)")
	coco_diag "$EP: connected, key set $(coco_attr "$EP" ide_key_set), root port GO_STATE $_f_go"
	[ "$_f_go" = 0x3f ] || return 1
	# Every pair in go on key set 1 (bits 13:8), none with both sets (21:16).
	refreshed 1 1 0x3f3f
}
coco_check "refresh: still Secure on the same Stream ID, key set 1 in use, old set stopped" first

second() {
	refreshed 0 2 0x3f || return 1
	coco_log_since | grep -F "$EP" | grep -q 'keys refreshed: key set 0 in use, refresh 2;'
}
coco_check "a second refresh goes back to key set 0, counted and logged" second

periodic() {
	coco_write 30 "$D/coco/ide" disconnect || { coco_run_diag "disconnect" "$?"; return 1; }
	coco_rmmod || { coco_diag "rmmod failed"; return 1; }
	coco_insmod ide_refresh_secs=1 || { coco_diag "insmod ide_refresh_secs=1 failed"; return 1; }
	coco_wait_ok 60 "$EP" || return 1
	coco_write 30 "$D/coco/ide" connect || { coco_run_diag "connect" "$?"; return 1; }
	coco_poll 20 sh -c "[ \"\$(cat '$D/coco/ide_refreshes')\" -ge 3 ] 2>/dev/null"
	_p_n=$(coco_attr "$EP" ide_refreshes)
	_p_s=$(coco_attr "$EP" ide_state)
	coco_diag "$EP: ide_refresh_secs=1: $_p_n refreshes, state '$_p_s'"
	_p_rc=0
	[ "$_p_n" -ge 3 ] 2>/dev/null && [ "$_p_s" = secure ] || _p_rc=1
	# Unloading with a stream up and its refresh pending takes both down.
	coco_rmmod || { coco_diag "rmmod with a refresh pending failed"; _p_rc=1; }
	any_enabled "$EP" && { coco_diag "$EP: a block is still enabled after rmmod"; _p_rc=1; }
	coco_insmod || { coco_diag "insmod failed"; return 1; }
	coco_wait_ok 60 "$EP" || _p_rc=1
	return "$_p_rc"
}
coco_check "ide_refresh_secs=1 refreshes periodically; rmmod with a refresh pending is clean" periodic

kp_fail() {
	_k_d=$COCO_PCI/$KPFAIL
	coco_wait_ok 60 "$KPFAIL" || return 1
	coco_write 30 "$_k_d/coco/ide" connect || { coco_run_diag "connect" "$?"; return 1; }
	_k_id=$(coco_attr "$KPFAIL" ide_stream_id)
	if coco_write 30 "$_k_d/coco/ide" refresh; then
		coco_diag "$KPFAIL: refresh accepted"
		return 1
	fi
	coco_diag "$KPFAIL: ide '$(coco_attr "$KPFAIL" ide)', key set $(coco_attr "$KPFAIL" ide_key_set), refreshes $(coco_attr "$KPFAIL" ide_refreshes), state '$(coco_attr "$KPFAIL" ide_state)'"
	_k_rc=0
	[ "$(coco_attr "$KPFAIL" ide_key_set)" = 0 ] && [ "$(coco_attr "$KPFAIL" ide_refreshes)" = 0 ] &&
		ends_secure "$KPFAIL" "$_k_id" || _k_rc=1
	coco_log_since | grep -F "$KPFAIL" | grep -q 'key refresh failed, the old keys stay in use: IDE_KM: KP_ACK status' || {
		coco_diag "$KPFAIL: no 'old keys stay in use' line"
		_k_rc=1
	}
	coco_write 30 "$_k_d/coco/ide" disconnect || _k_rc=1
	return "$_k_rc"
}
if [ -n "$KPFAIL" ]; then
	coco_check "fault:refresh-kp-fail: the refresh fails, the stream stays Secure on its old keys" kp_fail
else
	ktap_test_skip "fault:refresh-kp-fail: the refresh fails, the stream stays Secure (no such endpoint)"
fi

go_fail() {
	_g_d=$COCO_PCI/$GOFAIL
	coco_wait_ok 60 "$GOFAIL" || return 1
	coco_write 30 "$_g_d/coco/ide" connect || { coco_run_diag "connect" "$?"; return 1; }
	if coco_write 30 "$_g_d/coco/ide" refresh; then
		coco_diag "$GOFAIL: refresh accepted"
		return 1
	fi
	_g_c=$(coco_attr "$GOFAIL" ide)
	coco_diag "$GOFAIL: ide '$_g_c'"
	_g_rc=0
	case "$_g_c" in "error: "*) ;; *) _g_rc=1 ;; esac
	any_enabled "$GOFAIL" && { coco_diag "$GOFAIL: a block is still enabled"; _g_rc=1; }
	any_enabled "$(rp_of "$GOFAIL")" && { coco_diag "$(rp_of "$GOFAIL"): a block is still enabled"; _g_rc=1; }
	coco_log_since | grep -F "$GOFAIL" | grep -q 'key refresh failed, the stream is taken down' || {
		coco_diag "$GOFAIL: no 'taken down' line"
		_g_rc=1
	}
	# The refused K_SET_GO (an SPDM ERROR) ended the session: a new one for
	# the later tests.
	coco_write 30 "$_g_d/coco/rescan" 1 || _g_rc=1
	return "$_g_rc"
}
if [ -n "$GOFAIL" ]; then
	coco_check "fault:refresh-go-refused: the refresh fails after a transmitter switched, the stream is taken down" go_fail
else
	ktap_test_skip "fault:refresh-go-refused: the stream is taken down (no such endpoint)"
fi

ktap_finished
