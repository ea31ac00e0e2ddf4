#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# TDISP through the native backend: /sys/bus/pci/devices/<BDF>/tdisp drives
# the function's device interface (TDI) over coco.ko's session, on a link its
# IDE stream secures; tdi/ shows the interface report.
#  - tdisp is shown for TEE-IO functions only, and reads "unlocked";
#  - bind is refused while the NVMe driver is bound (EBUSY), and without an
#    IDE stream (ENOTCONN), with the reason in tdi/error;
#  - bind locks the TDI ("locked"): the report's MMIO range is the BAR the
#    kernel assigned (tdi/mmio_ranges against resource), lock_flags has
#    NO_FW_UPDATE; no driver may bind (a bind fails, the log says why), and
#    the IDE stream may not be disconnected;
#  - start: "run"; unbind: "unlocked", and the NVMe driver binds again;
#  - a BAR write while locked moves the TDI to ERROR: coco.ko notices on its
#    periodic check ("error", logged), start is refused, and unbind stops it;
#  - an FLR while in RUN returns it to "unlocked", the driver binds again and
#    the IDE stream is connected again;
#  - the kernel's pci_tsm_bind()/pci_tsm_unbind() (the VMM's path, called
#    through the debugfs hook tsm_bind on a function connected with
#    tsm/connect) lock and stop the TDI through the same backend; tdisp
#    "unbind" leaves a TDI the TSM core bound alone (EBUSY); a PCI_TSM_REQ_INFO
#    guest request returns the report with the certificate chain and the signed
#    measurements it rests on, the same bytes as tdi/report, certificate_chain
#    and measurements/;
#  - rmmod with a TDI locked stops it and lets drivers bind again.
#
# Needs the rig's tee-io platform; skips otherwise.

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
if [ "$(coco_driver "$EP")" != nvme ]; then
	ktap_skip_all "$EP has no NVMe driver bound"
	exit "$KSFT_SKIP"
fi

NOTEE=
i=0
while [ "$i" -lt "$N" ]; do
	case "+$(variant_of "$i")+" in *+platform:no-tee-io+*) NOTEE=$(ep_bdf "$i") ;; esac
	i=$((i + 1))
done

ktap_set_plan 11
coco_wait_ok 60 "$EP" || coco_diag "$EP is not ok"
coco_log_mark tdisp

tdisp() {
	cat "$D/tdisp" 2>/dev/null
}

nvme_unbind() {
	[ -z "$(coco_driver "$EP")" ] || coco_write 30 /sys/bus/pci/drivers/nvme/unbind "$EP"
}

# bar0: "start end" of BAR0 as the kernel assigned it (resource, line 1: the
# layout tdi/mmio_ranges follows).
bar0() {
	head -n 1 "$D/resource" | awk '{ print $1, $2 }'
}

visible() {
	_v_rc=0
	[ -e "$D/tdisp" ] && [ -d "$D/tdi" ] || { coco_diag "$EP: no tdisp or tdi/"; _v_rc=1; }
	[ "$(tdisp)" = unlocked ] || { coco_diag "$EP: tdisp '$(tdisp)'"; _v_rc=1; }
	if [ -n "$NOTEE" ] && { [ -e "$COCO_PCI/$NOTEE/tdisp" ] || [ -e "$COCO_PCI/$NOTEE/tdi/report" ]; }; then
		coco_diag "$NOTEE (no TEE-IO) shows tdisp"
		_v_rc=1
	fi
	return "$_v_rc"
}
coco_check "tdisp reads unlocked on a TEE-IO function (absent without TEE-IO)" visible

refused() {
	_r_rc=0
	if coco_write 30 "$D/tdisp" bind; then
		coco_diag "bind accepted with the NVMe driver bound"
		_r_rc=1
	fi
	coco_diag "with the driver: tdi/error '$(cat "$D/tdi/error")'"
	case "$(cat "$D/tdi/error")" in "a host driver is bound"*) ;; *) _r_rc=1 ;; esac
	[ "$(coco_driver "$EP")" = nvme ] || _r_rc=1
	nvme_unbind || { coco_diag "nvme unbind failed"; return 1; }
	if coco_write 30 "$D/tdisp" bind; then
		coco_diag "bind accepted without an IDE stream"
		_r_rc=1
	fi
	coco_diag "without a stream: tdi/error '$(cat "$D/tdi/error")'"
	case "$(cat "$D/tdi/error")" in "no IDE stream"*) ;; *) _r_rc=1 ;; esac
	[ "$(tdisp)" = unlocked ] || _r_rc=1
	# The refused bind lifted its driver gate: the driver binds again.
	coco_poll 10 sh -c "[ -e '$D/driver' ]" || { coco_diag "no driver after the refused bind"; _r_rc=1; }
	return "$_r_rc"
}
coco_check "bind refused with the NVMe driver bound (EBUSY) and without an IDE stream" refused

locked() {
	coco_write 30 "$D/coco/ide" connect || { coco_run_diag "ide connect" "$?"; return 1; }
	nvme_unbind || return 1
	coco_write 30 "$D/tdisp" bind || { coco_run_diag "bind" "$?"; coco_diag "tdi/error '$(cat "$D/tdi/error")'"; return 1; }
	_l_r=$(head -n 1 "$D/tdi/mmio_ranges")
	_l_b=$(bar0)
	_l_rs=$(echo "$_l_r" | awk '{ print $1, $2 }')
	_l_n=$(wc -c <"$D/tdi/report")
	coco_diag "$EP: tdisp '$(tdisp)', range '$_l_r' (BAR0 $_l_b), lock_flags $(cat "$D/tdi/lock_flags"), interface_info $(cat "$D/tdi/interface_info"), report $_l_n bytes"
	[ "$(tdisp)" = locked ] && [ "$_l_rs" = "$_l_b" ] && [ "$(cat "$D/tdi/lock_flags")" = 0x0001 ] &&
		[ "$_l_n" -gt 20 ] && [ -z "$(cat "$D/tdi/error")" ]
}
coco_check "bind: locked, the report's MMIO range is BAR0 as the kernel assigned it" locked

gated() {
	_g_rc=0
	if coco_write 15 /sys/bus/pci/drivers/nvme/bind "$EP"; then
		coco_diag "nvme bind accepted while locked"
		_g_rc=1
	fi
	if coco_write 15 "$D/coco/ide" disconnect; then
		coco_diag "IDE disconnect accepted while locked"
		_g_rc=1
	fi
	[ -z "$(coco_driver "$EP")" ] && [ "$(tdisp)" = locked ] || _g_rc=1
	# The refused probe says why.
	coco_log_since | grep -F "$EP" | grep -q 'nvme may not bind: its TDI is locked (TDISP)' || {
		coco_diag "no 'nvme may not bind' line"
		_g_rc=1
	}
	return "$_g_rc"
}
coco_check "while locked no driver binds (the refused probe says why) and the IDE stream stays" gated

run_unbind() {
	coco_write 30 "$D/tdisp" start || { coco_run_diag "start" "$?"; return 1; }
	_ru_s=$(tdisp)
	coco_write 30 "$D/tdisp" unbind || { coco_run_diag "unbind" "$?"; return 1; }
	_ru_u=$(tdisp)
	coco_poll 10 sh -c "[ -e '$D/driver' ]"
	coco_diag "$EP: after start '$_ru_s', after unbind '$_ru_u', driver '$(coco_driver "$EP")'"
	[ "$_ru_s" = run ] && [ "$_ru_u" = unlocked ] && [ "$(coco_driver "$EP")" = nvme ] &&
		[ -z "$(cat "$D/tdi/mmio_ranges")" ]
}
coco_check "start: run; unbind: unlocked, and the NVMe driver binds again" run_unbind

bar_write() {
	nvme_unbind || return 1
	coco_write 30 "$D/tdisp" bind || { coco_run_diag "bind" "$?"; return 1; }
	# The same value written back: any BAR write while locked is forbidden.
	cfg_wr "$EP" 0x10 "$(cfg_rdn "$EP" 0x10)"
	coco_poll 10 sh -c "[ \"\$(cat '$D/tdisp')\" = error ]"
	_bw_e=$(tdisp)
	# START only follows a lock: an interface in ERROR is not started.
	if coco_write 15 "$D/tdisp" start; then
		coco_diag "start accepted in ERROR"
		return 1
	fi
	coco_diag "start in ERROR: tdi/error '$(cat "$D/tdi/error")'"
	case "$(cat "$D/tdi/error")" in "the interface is not CONFIG_LOCKED"*) ;; *) return 1 ;; esac
	coco_write 30 "$D/tdisp" unbind || { coco_run_diag "unbind" "$?"; return 1; }
	coco_diag "$EP: after the BAR write '$_bw_e', after unbind '$(tdisp)'"
	[ "$_bw_e" = error ] && [ "$(tdisp)" = unlocked ] || return 1
	coco_log_since | grep -F "$EP" | grep -q 'moved the TDI to ERROR'
}
coco_check "a BAR write while locked: error (periodic check), start refused, unbind stops it" bar_write

flr() {
	coco_poll 10 sh -c "[ -e '$D/driver' ]"
	nvme_unbind || return 1
	coco_write 30 "$D/tdisp" bind || { coco_run_diag "bind" "$?"; return 1; }
	coco_write 30 "$D/tdisp" start || { coco_run_diag "start" "$?"; return 1; }
	coco_write 30 "$D/reset" 1 || { coco_run_diag "reset" "$?"; return 1; }
	coco_poll 30 sh -c "dmesg | grep -F '$EP' | grep -q 'returned the TDI to CONFIG_UNLOCKED'"
	coco_poll 30 sh -c "[ -e '$D/driver' ] && [ \"\$(cat '$D/coco/ide_state')\" = secure ]"
	coco_diag "$EP: after the FLR: tdisp '$(tdisp)', driver '$(coco_driver "$EP")', ide '$(coco_attr "$EP" ide)', ide_state '$(coco_attr "$EP" ide_state)'"
	[ "$(tdisp)" = unlocked ] && [ "$(coco_driver "$EP")" = nvme ] &&
		[ "$(coco_attr "$EP" ide_state)" = secure ]
}
coco_check "an FLR while in RUN: unlocked, the driver binds, the IDE stream is reconnected" flr

uevents_and_log() {
	_ul_rc=0
	for _ul_w in 'TDI locked on IDE stream' 'TDI started (RUN)' 'TDI stopped (CONFIG_UNLOCKED)'; do
		coco_log_since | grep -F "$EP" | grep -qF "$_ul_w" || { coco_diag "no '$_ul_w' line"; _ul_rc=1; }
	done
	coco_write 30 "$D/coco/ide" disconnect || _ul_rc=1
	return "$_ul_rc"
}
coco_check "each step is logged; the stream disconnects once the TDI is unbound" uevents_and_log

# tlv_entry FILE TYPE OUT: the bytes of FILE's entry TYPE ("u16 type, u16 0,
# u32 length, bytes" entries) into OUT.
tlv_entry() {
	_te_off=0
	_te_size=$(wc -c <"$1")
	while [ "$_te_off" -lt "$_te_size" ]; do
		_te_t=$(od -A n -t u2 -j "$_te_off" -N 2 "$1" | tr -d ' ')
		_te_l=$(od -A n -t u4 -j $((_te_off + 4)) -N 4 "$1" | tr -d ' ')
		if [ "$_te_t" = "$2" ]; then
			dd if="$1" of="$3" bs=1 skip=$((_te_off + 8)) count="$_te_l" 2>/dev/null
			return 0
		fi
		_te_off=$((_te_off + 8 + _te_l))
	done
	return 1
}

# tdi_info_matches INFO: INFO's four entries are the sysfs files' bytes.
tdi_info_matches() {
	_tm_rc=0
	for _tm in 1:"$D/tdi/report" 2:"$D/coco/certificate_chain" \
		3:"$D/measurements/transcript" 4:"$D/measurements/signature"; do
		tlv_entry "$1" "${_tm%%:*}" "$COCO_TMP/tdi-info-entry" || { coco_diag "no entry ${_tm%%:*}"; _tm_rc=1; continue; }
		_tm_a=$(sha256sum <"$COCO_TMP/tdi-info-entry")
		_tm_b=$(sha256sum <"${_tm#*:}")
		# (sysfs reports a size of 0 for its binary files: the entry must not be empty)
		if [ "$_tm_a" != "$_tm_b" ] || [ ! -s "$COCO_TMP/tdi-info-entry" ]; then
			coco_diag "entry ${_tm%%:*}: $(wc -c <"$COCO_TMP/tdi-info-entry") bytes, ${_tm#*:}: $(wc -c <"${_tm#*:}") bytes, not the same"
			coco_diag "  entry: $(od -A n -t x1 -N 16 "$COCO_TMP/tdi-info-entry")"
			coco_diag "  file:  $(od -A n -t x1 -N 16 "${_tm#*:}")"
			_tm_rc=1
		fi
	done
	return "$_tm_rc"
}

tsm_path() {
	_tp_t=$(native_tsm) || { coco_diag "no native TSM"; return 1; }
	_tp_h=/sys/kernel/debug/coco/$EP/tsm_bind
	[ -e "$_tp_h" ] || { coco_diag "no $_tp_h"; return 1; }
	coco_write 30 "$D/tsm/connect" "$_tp_t" || { coco_run_diag "tsm/connect" "$?"; return 1; }
	nvme_unbind || return 1
	_tp_rc=0
	coco_write 30 "$_tp_h" "bind 1" || { coco_run_diag "pci_tsm_bind" "$?"; _tp_rc=1; }
	_tp_l=$(tdisp)
	cat "$_tp_h" >"$COCO_TMP/tdi-info" 2>/dev/null || { coco_diag "PCI_TSM_REQ_INFO failed"; _tp_rc=1; }
	coco_diag "PCI_TSM_REQ_INFO: $(wc -c <"$COCO_TMP/tdi-info") bytes"
	tdi_info_matches "$COCO_TMP/tdi-info" || _tp_rc=1
	if coco_write 15 "$D/tdisp" unbind; then
		coco_diag "tdisp unbind accepted for a TDI the TSM core bound"
		_tp_rc=1
	fi
	coco_write 30 "$_tp_h" unbind || { coco_run_diag "pci_tsm_unbind" "$?"; _tp_rc=1; }
	_tp_u=$(tdisp)
	coco_write 30 "$D/tsm/disconnect" "$_tp_t" || { coco_run_diag "tsm/disconnect" "$?"; _tp_rc=1; }
	coco_write 30 /sys/bus/pci/drivers_probe "$EP"
	coco_diag "$EP: pci_tsm_bind: '$_tp_l', pci_tsm_unbind: '$_tp_u', ide '$(coco_attr "$EP" ide)', driver '$(coco_driver "$EP")'"
	[ "$_tp_l" = locked ] && [ "$_tp_u" = unlocked ] &&
		[ "$(coco_attr "$EP" ide)" = disconnected ] && [ "$(coco_driver "$EP")" = nvme ] || _tp_rc=1
	return "$_tp_rc"
}
coco_tmp_init
coco_check "pci_tsm_bind/unbind (the VMM's path) lock and stop the TDI; the INFO guest request returns the report and its evidence" tsm_path

rmmod_locked() {
	coco_write 30 "$D/coco/ide" connect || { coco_run_diag "ide connect" "$?"; return 1; }
	nvme_unbind || return 1
	coco_write 30 "$D/tdisp" bind || { coco_run_diag "bind" "$?"; return 1; }
	coco_log_mark tdisp-rmmod
	coco_rmmod || { coco_diag "rmmod failed"; return 1; }
	_rl_rc=0
	coco_log_since | grep -F "$EP" | grep -q 'coco: TDI stopped (CONFIG_UNLOCKED)' || { coco_diag "no 'TDI stopped' line"; _rl_rc=1; }
	# The refusal is gone with coco.ko: the NVMe driver binds.
	coco_write 30 /sys/bus/pci/drivers/nvme/bind "$EP" || { coco_run_diag "nvme bind after rmmod" "$?"; _rl_rc=1; }
	coco_diag "$EP: after rmmod with a TDI locked: driver '$(coco_driver "$EP")'"
	[ "$(coco_driver "$EP")" = nvme ] || _rl_rc=1
	coco_insmod || { coco_diag "insmod failed"; return 1; }
	coco_wait_ok 60 "$EP" || _rl_rc=1
	return "$_rl_rc"
}
coco_check "rmmod with a TDI locked: stopped inside the session, drivers may bind again" rmmod_locked

faults_none() {
	# Unknown verbs are refused.
	! coco_write 15 "$D/tdisp" lock
}
coco_check "an unknown verb is refused (EINVAL)" faults_none

ktap_finished
