#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The native IDE backend (coco/ide) on the emulated TEE-IO platform: writing
# "connect" secures the link of an endpoint with a Selective IDE Stream whose
# keys coco.ko programs itself (IDE_KM inside its session for the endpoint,
# the root port's key interface for the host's end):
#  - coco/ide reads "connected streamH.R.E", ide_state "secure";
#  - both ends' Selective IDE Stream blocks are enabled with the same Stream
#    ID (coco/ide_stream_id) and read Secure; the host bridge links the
#    stream and counts one available stream fewer;
#  - a second connect is refused (EBUSY), and so is a re-authentication
#    (rescan) while the stream holds the session;
#  - "disconnect" disables both ends (Insecure), removes the host bridge's
#    link and gives the stream back; so does rmmod with a stream up;
#  - an endpoint with IDE but without TEE-IO (platform:no-tee-io) is
#    connected too;
#  - Stream IDs run out: with the host bridge's pool sized to one (the
#    debugfs hook ide_host_streams, as a platform with fewer streams would
#    size it), a second function's connect fails (ENOSPC) with the reason,
#    nothing left enabled on it;
#  - a function reset erases the device's keys: the stream is connected
#    again after the new authentication;
#  - the same backend is the kernel's link TSM (/sys/class/tsm/tsmN, device
#    "coco"): tsm/connect brings the stream up, tsm/disconnect (not
#    coco/ide) takes it down; 'authenticated' is one file, the PCI core's,
#    "1" exactly when coco.ko authenticated the function;
#  - an endpoint without IDE (variant platform:no-ide) and endpoints with an
#    IDE_KM fault (fault:kp-ack-fail, fault:go-refused, fault:wrong-stream-id,
#    fault:ide-key-mismatch: the link's keys differ)
#    fail with the reason in coco/ide and the log, nothing left enabled or
#    registered.
#
# Needs the rig's tee-io platform (scripts/qemu-run.sh --platform tee-io);
# skips otherwise. Endpoint i is the NVMe function on bus i+1.

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
HB=$(readlink -f "$D")
HB=${HB%%/0000:*}

# The endpoint without IDE (variant platform:no-ide) and those with an IDE_KM
# fault, if any.
NOIDE= NOTEE= FAULTY=
i=0
while [ "$i" -lt "$N" ]; do
	case "+$(variant_of "$i")+" in
	*+platform:no-ide+*) NOIDE=$(ep_bdf "$i") ;;
	+platform:no-tee-io+) NOTEE=$(ep_bdf "$i") ;;
	*+fault:kp-ack-fail+* | *+fault:go-refused+* | *+fault:wrong-stream-id+* | \
		*+fault:ide-key-mismatch+*)
		FAULTY="$FAULTY $(ep_bdf "$i")=$(variant_of "$i")" ;;
	esac
	i=$((i + 1))
done

# expected_failure VARIANT: the start of coco/ide after a failed connect.
expected_failure() {
	case "$1" in
	fault:kp-ack-fail) echo "error: IDE_KM: KP_ACK status: unspecified failure" ;;
	fault:go-refused) echo "error: device answered a request in the session with an SPDM ERROR" ;;
	fault:wrong-stream-id) echo "error: IDE_KM: KP_ACK does not echo" ;;
	fault:ide-key-mismatch) echo "error: IDE integrity check failure once both ends were enabled" ;;
	esac
}

ktap_set_plan 15
coco_wait_ok 60 "$EP" || coco_diag "$EP is not ok"
coco_log_mark ide-connect
AVAIL0=$(cat "$HB/available_secure_streams" 2>/dev/null)

connected() {
	coco_write 30 "$D/coco/ide" connect || { coco_run_diag "connect" "$?"; return 1; }
	_c=$(coco_attr "$EP" ide)
	_s=$(coco_attr "$EP" ide_state)
	coco_diag "$EP: ide '$_c', ide_state '$_s', stream ID '$(coco_attr "$EP" ide_stream_id)'"
	case "$_c" in "connected stream"*) ;; *) return 1 ;; esac
	[ "$_s" = secure ] && [ "$(coco_attr "$EP" ide_algorithm)" = aes-gcm-256 ] &&
		[ "$(coco_attr "$EP" ide_key_set)" = 0 ]
}
coco_check "connect: coco/ide reads connected, ide_state secure" connected

same_stream() {
	_id=$(coco_attr "$EP" ide_stream_id)
	_e=$(enabled_id "$EP")
	_r=$(enabled_id "$RP")
	coco_diag "endpoint block: '$_e', root port $RP block: '$_r' (id status)"
	[ -n "$_id" ] && [ "$_e" = "$_id $IDE_SECURE" ] && [ "$_r" = "$_id $IDE_SECURE" ]
}
coco_check "both ends enabled with the same Stream ID and Secure" same_stream

host_bridge() {
	_name=$(coco_attr "$EP" ide)
	_name=${_name#connected }
	_a=$(cat "$HB/available_secure_streams" 2>/dev/null)
	coco_diag "$HB: link '$_name' -> $(readlink "$HB/$_name" 2>/dev/null), available $AVAIL0 -> $_a"
	[ -L "$HB/$_name" ] && [ "$(readlink -f "$HB/$_name")" = "$(readlink -f "$D")" ] &&
		[ "$_a" -eq $((AVAIL0 - 1)) ]
}
coco_check "the host bridge links the stream and has one available stream fewer" host_bridge

busy() {
	! coco_write 15 "$D/coco/ide" connect || { coco_diag "second connect accepted"; return 1; }
	! coco_write 15 "$D/coco/rescan" 1 || { coco_diag "rescan accepted"; return 1; }
	[ "$(coco_attr "$EP" ide_state)" = secure ]
}
coco_check "a second connect and a rescan are refused while connected; still secure" busy

disconnected() {
	_name=$(coco_attr "$EP" ide)
	_name=${_name#connected }
	coco_write 30 "$D/coco/ide" disconnect || { coco_run_diag "disconnect" "$?"; return 1; }
	_c=$(coco_attr "$EP" ide)
	_a=$(cat "$HB/available_secure_streams" 2>/dev/null)
	coco_diag "$EP: ide '$_c'; blocks: endpoint '$(enabled_id "$EP")', root port '$(enabled_id "$RP")'; available $_a"
	[ "$_c" = disconnected ] && [ -z "$(enabled_id "$EP")" ] && [ -z "$(enabled_id "$RP")" ] &&
		[ ! -e "$HB/$_name" ] && [ "$_a" -eq "$AVAIL0" ]
}
coco_check "disconnect: both ends disabled, the stream given back" disconnected

no_ide() {
	[ -n "$NOIDE" ] || { coco_diag "no platform:no-ide endpoint in this run"; return 1; }
	! coco_write 30 "$COCO_PCI/$NOIDE/coco/ide" connect || { coco_diag "connect accepted"; return 1; }
	_c=$(coco_attr "$NOIDE" ide)
	coco_diag "$NOIDE: ide '$_c'"
	case "$_c" in "error: no IDE"*) ;; *) return 1 ;; esac
	coco_log_since | grep -F "$NOIDE" | grep -q 'coco: IDE connect failed: no IDE'
}
if [ -n "$NOIDE" ]; then
	coco_check "an endpoint without IDE: connect fails with the reason" no_ide
else
	ktap_test_skip "an endpoint without IDE: connect fails with the reason (no platform:no-ide endpoint)"
fi

# IDE is not only for TDISP: an endpoint with IDE but without TEE-IO is
# connected all the same (coco/ide and tsm/connect).
ide_only() {
	_io_d=$COCO_PCI/$NOTEE
	coco_wait_ok 60 "$NOTEE" || return 1
	coco_write 30 "$_io_d/coco/ide" connect || { coco_run_diag "connect" "$?"; return 1; }
	_io_s=$(coco_attr "$NOTEE" ide_state)
	coco_write 30 "$_io_d/coco/ide" disconnect || return 1
	_io_t=$(native_tsm) || { coco_diag "no native TSM"; return 1; }
	coco_write 30 "$_io_d/tsm/connect" "$_io_t" || { coco_run_diag "tsm/connect" "$?"; return 1; }
	_io_c=$(coco_attr "$NOTEE" ide_state)
	coco_write 30 "$_io_d/tsm/disconnect" "$_io_t" || return 1
	coco_diag "$NOTEE (IDE, no TEE-IO): coco/ide: '$_io_s', tsm/connect: '$_io_c'"
	[ "$_io_s" = secure ] && [ "$_io_c" = secure ]
}
if [ -n "$NOTEE" ]; then
	coco_check "an endpoint with IDE but without TEE-IO is connected too" ide_only
else
	ktap_test_skip "an endpoint with IDE but without TEE-IO is connected too (no platform:no-tee-io endpoint)"
fi

exhausted() {
	_x_h=/sys/kernel/debug/coco/$EP/ide_host_streams
	[ -e "$_x_h" ] || { coco_diag "no $_x_h"; return 1; }
	_x_n=$(cat "$_x_h")
	coco_write 15 "$_x_h" 1 || { coco_run_diag "ide_host_streams 1" "$?"; return 1; }
	_x_rc=0
	coco_write 30 "$D/coco/ide" connect || { coco_run_diag "connect" "$?"; _x_rc=1; }
	if coco_write 30 "$COCO_PCI/$NOTEE/coco/ide" connect; then
		coco_diag "$NOTEE: a second stream with a pool of one"
		coco_write 30 "$COCO_PCI/$NOTEE/coco/ide" disconnect
		_x_rc=1
	fi
	_x_c=$(coco_attr "$NOTEE" ide)
	coco_diag "$NOTEE: ide '$_x_c'; blocks: endpoint '$(enabled_id "$NOTEE")', root port '$(enabled_id "$(rp_of "$NOTEE")")'; available $(cat "$HB/available_secure_streams")"
	case "$_x_c" in "error: no free Selective IDE stream"*) ;; *) _x_rc=1 ;; esac
	[ -z "$(enabled_id "$NOTEE")" ] && [ -z "$(enabled_id "$(rp_of "$NOTEE")")" ] || _x_rc=1
	coco_write 30 "$D/coco/ide" disconnect || _x_rc=1
	coco_write 15 "$_x_h" "$_x_n" || { coco_run_diag "ide_host_streams $_x_n" "$?"; _x_rc=1; }
	return "$_x_rc"
}
if [ -n "$NOTEE" ]; then
	coco_check "Stream IDs exhausted (a pool of one): a second connect fails with the reason" exhausted
else
	ktap_test_skip "Stream IDs exhausted: a second connect fails (no second IDE endpoint)"
fi

ide_faults() {
	[ -n "$FAULTY" ] || { coco_diag "no endpoint with an IDE_KM fault in this run"; return 1; }
	_if_rc=0
	for _f in $FAULTY; do
		_b=${_f%%=*}
		_v=${_f#*=}
		coco_wait_ok 60 "$_b" || _if_rc=1
		if coco_write 30 "$COCO_PCI/$_b/coco/ide" connect; then
			coco_diag "$_b ($_v): connect accepted"
			_if_rc=1
			continue
		fi
		_c=$(coco_attr "$_b" ide)
		_a=$(cat "$HB/available_secure_streams" 2>/dev/null)
		coco_diag "$_b ($_v): ide '$_c'; blocks: endpoint '$(enabled_id "$_b")', root port '$(enabled_id "$(rp_of "$_b")")'; available $_a"
		case "$_c" in "$(expected_failure "$_v")"*) ;; *) _if_rc=1 ;; esac
		# Released: no enabled block, the stream given back, no link left.
		if [ -n "$(enabled_id "$_b")" ] || [ -n "$(enabled_id "$(rp_of "$_b")")" ] ||
			[ "$_a" -ne "$AVAIL0" ]; then
			_if_rc=1
		fi
		coco_log_since | grep -F "$_b" | grep -q 'coco: IDE connect failed: ' || {
			coco_diag "$_b: no 'IDE connect failed' line"
			_if_rc=1
		}
	done
	[ -z "$(ls -d "$HB"/stream* 2>/dev/null)" ] || { coco_diag "stream links left: $(ls -d "$HB"/stream*)"; _if_rc=1; }
	# A refused K_SET_GO (an SPDM ERROR inside the session) ended that session: the
	# later tests get a new one.
	for _f in $FAULTY; do
		coco_write 30 "$COCO_PCI/${_f%%=*}/coco/rescan" 1 || _if_rc=1
	done
	return "$_if_rc"
}
if [ -n "$FAULTY" ]; then
	coco_check "IDE_KM faults: connect fails with the reason, the stream released" ide_faults
else
	ktap_test_skip "IDE_KM faults: connect fails with the reason (no such endpoint)"
fi

# A function reset (FLR) erases the device's keys: the stream is connected
# again once the device is authenticated again, on a new session.
reset_reconnect() {
	coco_write 30 "$D/coco/ide" connect || { coco_run_diag "connect" "$?"; return 1; }
	coco_write 30 "$D/reset" 1 || { coco_run_diag "echo 1 > reset" "$?"; return 1; }
	coco_poll 30 sh -c "dmesg | grep -F '$EP' | grep -q 'secure (stream[0-9.]*) again after a reset'"
	_c=$(coco_attr "$EP" ide)
	_s=$(coco_attr "$EP" ide_state)
	coco_diag "$EP after the reset: ide '$_c', ide_state '$_s', blocks endpoint '$(enabled_id "$EP")', root port '$(enabled_id "$RP")'"
	coco_log_since | grep -F "$EP" | grep -E 'lost its keys|again after a reset|reconnect failed' | coco_diag_stream
	_rr_rc=0
	case "$_c" in "connected stream"*) ;; *) _rr_rc=1 ;; esac
	[ "$_s" = secure ] || _rr_rc=1
	coco_write 30 "$D/coco/ide" disconnect || _rr_rc=1
	return "$_rr_rc"
}
coco_check "a function reset: the stream is connected again, Secure" reset_reconnect

tsm_connect() {
	TSM=$(native_tsm) || { coco_diag "no /sys/class/tsm/tsmN for coco: $(ls /sys/class/tsm 2>&1)"; return 1; }
	[ -w "$D/tsm/connect" ] || { coco_diag "no $D/tsm/connect"; return 1; }
	coco_write 30 "$D/tsm/connect" "$TSM" || { coco_run_diag "tsm/connect" "$?"; return 1; }
	_c=$(cat "$D/tsm/connect")
	coco_diag "$EP: tsm/connect '$_c', coco/ide '$(coco_attr "$EP" ide)', ide_state '$(coco_attr "$EP" ide_state)', authenticated '$(cat "$D/authenticated")'"
	[ "$_c" = "$TSM" ] && [ "$(coco_attr "$EP" ide_state)" = secure ] &&
		[ "$(cat "$D/authenticated")" = 1 ] && [ -n "$(enabled_id "$EP")" ]
}
coco_check "tsm/connect with coco's native TSM: the same stream, Secure, authenticated 1" tsm_connect

tsm_disconnect() {
	! coco_write 15 "$D/coco/ide" disconnect || { coco_diag "coco/ide disconnect accepted"; return 1; }
	coco_write 30 "$D/tsm/disconnect" "$TSM" || { coco_run_diag "tsm/disconnect" "$?"; return 1; }
	coco_diag "$EP: tsm/connect '$(cat "$D/tsm/connect")', coco/ide '$(coco_attr "$EP" ide)'"
	[ -z "$(cat "$D/tsm/connect")" ] && [ "$(coco_attr "$EP" ide)" = disconnected ] &&
		[ -z "$(enabled_id "$EP")" ] && [ -z "$(enabled_id "$RP")" ]
}
coco_check "coco/ide cannot disconnect it; tsm/disconnect takes it down" tsm_disconnect

# One 'authenticated' per function, the PCI core's, with coco's result.
one_authenticated() {
	_oa_rc=0
	for _b in $(coco_devices); do
		_n=$(ls "$COCO_PCI/$_b" | grep -c '^authenticated$')
		_v=$(cat "$COCO_PCI/$_b/authenticated" 2>/dev/null)
		_s=$(coco_attr "$_b" auth_status)
		if [ "$_n" != 1 ] || { [ "$_s" = ok ] && [ "$_v" != 1 ]; } ||
			{ [ "$_s" != ok ] && [ "$_v" != 0 ]; }; then
			coco_diag "$_b: $_n authenticated file(s), '$_v', auth_status '$_s'"
			_oa_rc=1
		fi
	done
	return "$_oa_rc"
}
coco_check "one authenticated file per function, 1 exactly when coco authenticated it" one_authenticated

log_ok() {
	_l=$(coco_log_since | grep -F "$EP" | grep -E 'coco: IDE stream [0-9]+ (secure|disconnected)')
	echo "$_l" | coco_diag_stream
	# connect, reset, tsm/connect, and the exhaustion check when it ran.
	_lw=3
	[ -n "$NOTEE" ] && _lw=4
	[ "$(echo "$_l" | grep -c 'secure (stream[0-9.]*),')" -eq "$_lw" ] &&
		[ "$(echo "$_l" | grep -c 'again after a reset')" -eq 1 ] &&
		[ "$(echo "$_l" | grep -c disconnected)" -eq "$_lw" ]
}
coco_check "the log has every connect, reconnect and disconnect" log_ok

# rmmod with a stream up: taken down inside the session (disable, K_SET_STOP,
# release) before the session ends; loading the module again finds it
# disconnected.
rmmod_down() {
	coco_write 30 "$D/coco/ide" connect || { coco_run_diag "connect" "$?"; return 1; }
	_name=$(coco_attr "$EP" ide)
	_name=${_name#connected }
	coco_rmmod || { coco_diag "rmmod failed"; coco_ensure_loaded; return 1; }
	_a=$(cat "$HB/available_secure_streams" 2>/dev/null)
	coco_diag "after rmmod: blocks endpoint '$(enabled_id "$EP")', root port '$(enabled_id "$RP")', available $_a"
	_rd_rc=0
	if [ -n "$(enabled_id "$EP")" ] || [ -n "$(enabled_id "$RP")" ] || [ -e "$HB/$_name" ] ||
		[ "$_a" -ne "$AVAIL0" ]; then
		_rd_rc=1
	fi
	coco_log_since | grep -F "$EP" | grep -q 'coco: IDE stream taken down' ||
		{ coco_diag "no 'IDE stream taken down' line"; _rd_rc=1; }
	coco_insmod || { coco_diag "insmod failed"; return 1; }
	coco_wait_ok 60 "$EP" || _rd_rc=1
	[ "$(coco_attr "$EP" ide)" = disconnected ] || _rd_rc=1
	return "$_rd_rc"
}
coco_check "rmmod with a stream up takes it down cleanly" rmmod_down

ktap_finished
