#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# A native IDE connect cut short (the fault boot: endpoints with
# fault:slow-idekm, which answer every IDE_KM request with ResponseNotReady
# and a 262 ms wait, so a connect takes about 4 s):
#  - rmmod while a connect runs: the connect fails, rmmod completes, no
#    selective stream block is left enabled on either end, the host bridge has
#    every stream back and no stream link; coco.ko loads again;
#  - the endpoint hot-unplugged while a connect runs (the last slow-idekm
#    endpoint): the connect fails, the function goes, nothing is left enabled
#    on its root port and the host bridge has every stream back.
# The boot's kmemleak scan and kernel log check cover leaks and splats.

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

ktap_print_header
if [ "$(id -u)" != 0 ]; then
	ktap_skip_all "needs root"
	exit "$KSFT_SKIP"
fi

# The endpoints with fault:slow-idekm: "index" each.
SLOW=
for _v in $COCO_VARIANTS; do
	[ "${_v#*:}" = fault:slow-idekm ] && SLOW="$SLOW ${_v%%:*}"
done
set -- $SLOW
if [ $# -lt 2 ]; then
	ktap_skip_all "needs two endpoints with fault:slow-idekm"
	exit "$KSFT_SKIP"
fi
RMMOD_I=$1
UNPLUG_I=$2
coco_ensure_loaded
ktap_set_plan 2
coco_log_mark ide-abort

# released BDF RP HB AVAIL: no enabled block on BDF (if it is still there)
# and RP, AVAIL streams available under HB and no stream link there.
released() {
	_rl_rc=0
	for _rl_d in $1 $2; do
		[ -e "$COCO_PCI/$_rl_d" ] || continue
		_rl_cap=$(ext_cap "$_rl_d" $PCI_EXT_CAP_ID_IDE)
		_rl_n=$(nr_sel "$_rl_d" "$_rl_cap")
		_rl_i=0
		while [ "$_rl_i" -lt "$_rl_n" ]; do
			_rl_b=$(sel_block "$_rl_d" "$_rl_cap" "$_rl_i")
			if [ $(($(cfg_rdn "$_rl_d" $((_rl_b + 4))) & IDE_SEL_EN)) -ne 0 ]; then
				coco_diag "$_rl_d: block $_rl_i still enabled"
				_rl_rc=1
			fi
			_rl_i=$((_rl_i + 1))
		done
	done
	_rl_a=$(cat "$3/available_secure_streams" 2>/dev/null)
	[ "$_rl_a" = "$4" ] || { coco_diag "$3: available_secure_streams $_rl_a, want $4"; _rl_rc=1; }
	[ -z "$(ls -d "$3"/stream* 2>/dev/null)" ] || { coco_diag "stream links left: $(ls -d "$3"/stream*)"; _rl_rc=1; }
	return "$_rl_rc"
}

# host_bridge BDF: its host bridge's sysfs directory.
host_bridge() {
	_hb=$(readlink -f "$COCO_PCI/$1")
	echo "${_hb%%/0000:*}"
}

rmmod_mid_connect() {
	_rm_b=$(ep_bdf "$RMMOD_I")
	_rm_rp=$(rp_of "$_rm_b")
	_rm_hb=$(host_bridge "$_rm_b")
	_rm_a=$(cat "$_rm_hb/available_secure_streams" 2>/dev/null)
	coco_wait_ok 60 "$_rm_b" || return 1
	_rm_out=$COCO_TMP/abort-rmmod
	(echo connect >"$COCO_PCI/$_rm_b/coco/ide" 2>/dev/null; echo "$?" >"$_rm_out") &
	_rm_pid=$!
	# Well inside the connect (13 IDE_KM requests, each waited for).
	sleep 2
	coco_rmmod || { coco_diag "rmmod failed"; wait "$_rm_pid"; coco_ensure_loaded; return 1; }
	wait "$_rm_pid"
	_rm_rc=0
	coco_diag "$_rm_b: connect exit status $(cat "$_rm_out"); log: $(coco_log_since | grep -F "$_rm_b" | grep -o 'IDE connect failed: .*' | head -n 1)"
	[ "$(cat "$_rm_out")" != 0 ] || { coco_diag "the connect succeeded: rmmod did not cut it short"; _rm_rc=1; }
	released "$_rm_b" "$_rm_rp" "$_rm_hb" "$_rm_a" || _rm_rc=1
	coco_insmod || { coco_diag "insmod failed"; return 1; }
	coco_wait_ok 60 "$_rm_b" || _rm_rc=1
	return "$_rm_rc"
}
coco_tmp_init
coco_check "rmmod during a connect: the connect fails, every stream released" rmmod_mid_connect

unplug_mid_connect() {
	_up_b=$(ep_bdf "$UNPLUG_I")
	_up_rp=$(rp_of "$_up_b")
	_up_hb=$(host_bridge "$_up_b")
	_up_a=$(cat "$_up_hb/available_secure_streams" 2>/dev/null)
	coco_wait_ok 60 "$_up_b" || return 1
	_up_out=$COCO_TMP/abort-unplug
	# pciehp powers the slot off 5 s after the button press: the connect
	# (about 4 s) is started 3 s in, so that the removal comes in the middle.
	coco_host device_del "coco-nvme$UNPLUG_I"
	sleep 3
	(echo connect >"$COCO_PCI/$_up_b/coco/ide" 2>/dev/null; echo "$?" >"$_up_out") &
	_up_pid=$!
	coco_poll 60 sh -c "[ ! -e '$COCO_PCI/$_up_b' ]" || { coco_diag "$_up_b still there"; wait "$_up_pid"; return 1; }
	wait "$_up_pid"
	coco_diag "$_up_b: gone; connect exit status $(cat "$_up_out"); log: $(coco_log_since | grep -F "$_up_b" | grep -E -o 'IDE (connect failed|stream [0-9]+ secure).*' | head -n 1)"
	# Whether the connect finished before the removal or not, nothing is left.
	released "$_up_b" "$_up_rp" "$_up_hb" "$_up_a"
}
coco_check "hot-unplug during a connect: the function goes, every stream released" unplug_mid_connect

ktap_finished
