# SPDX-License-Identifier: GPL-2.0
#
# Config-space helpers of the kselftests that look at IDE (sourced after
# coco_lib.sh): dword reads and writes through sysfs config (as root),
# capability lookup, Selective IDE Stream blocks, and the rig's endpoints
# (endpoint i is the NVMe function on bus i+1; COCO_VARIANTS names variants).

PCI_EXT_CAP_ID_IDE=0x30
PCI_EXT_CAP_ID_VNDR=0x0b
PCI_EXT_CAP_ID_ERR=0x01
IDE_SEL_EN=1
IDE_SECURE=2
IDE_FAIL=0x80000000

# cfg_rd BDF OFF: the config dword at OFF (hex, 8 digits).
cfg_rd() {
	od -A n -t x4 -j "$(($2))" -N 4 "$COCO_PCI/$1/config" 2>/dev/null | tr -d ' \n'
}

# cfg_rdn BDF OFF: the config dword at OFF as a number.
cfg_rdn() {
	_crn=$(cfg_rd "$1" "$2")
	echo $((0x${_crn:-0}))
}

# cfg_wr_bytes BDF OFF HEX: write the bytes HEX (memory order, a multiple of
# 4 bytes) at the dword-aligned OFF: one dword write per 4 bytes.
cfg_wr_bytes() {
	_cwb_s=$(echo "$3" | sed 's/../\\x&/g')
	# shellcheck disable=SC2059 # the format is the \x escapes built above
	printf "$_cwb_s" | dd of="$COCO_PCI/$1/config" bs=4 seek=$(($2 / 4)) \
		count=$((${#3} / 8)) conv=notrunc 2>/dev/null
}

# cfg_wr BDF OFF VALUE: write the dword VALUE at OFF (little endian).
cfg_wr() {
	_cw_v=$(($3 & 0xffffffff))
	cfg_wr_bytes "$1" "$2" "$(printf %02x%02x%02x%02x $((_cw_v & 255)) $(((_cw_v >> 8) & 255)) \
		$(((_cw_v >> 16) & 255)) $(((_cw_v >> 24) & 255)))"
}

# ext_cap BDF ID [VSEC_ID]: offset of the extended capability ID (for a VSEC,
# the one with VSEC_ID), 0 if none.
ext_cap() {
	_ec_off=256
	_ec_n=0
	while [ "$_ec_off" -ge 256 ] && [ "$_ec_n" -lt 64 ]; do
		_ec_h=$(cfg_rdn "$1" "$_ec_off")
		[ "$_ec_h" -eq 0 ] && break
		if [ $((_ec_h & 0xffff)) -eq $(($2)) ]; then
			if [ -z "$3" ] || [ $(($(cfg_rdn "$1" $((_ec_off + 4))) & 0xffff)) -eq $(($3)) ]; then
				echo "$_ec_off"
				return 0
			fi
		fi
		_ec_off=$((_ec_h >> 20))
		_ec_n=$((_ec_n + 1))
	done
	echo 0
}

# pcie_cap BDF: offset of the PCI Express capability.
pcie_cap() {
	_pc_off=$(($(cfg_rdn "$1" 0x34) & 0xff))
	while [ "$_pc_off" -ne 0 ]; do
		_pc_v=$(cfg_rdn "$1" "$_pc_off")
		[ $((_pc_v & 0xff)) -eq 16 ] && { echo "$_pc_off"; return 0; }
		_pc_off=$(((_pc_v >> 8) & 0xff))
	done
	echo 0
}

# sel_block BDF IDE_OFF I: offset of Selective IDE Stream block I.
sel_block() {
	_sb_cap=$(cfg_rdn "$1" $(($2 + 4)))
	_sb_link=0
	[ $((_sb_cap & 1)) -eq 1 ] && _sb_link=$((((_sb_cap >> 13) & 7) + 1))
	_sb_pos=$(($2 + 12 + _sb_link * 8))
	_sb_assoc=$(($(cfg_rdn "$1" "$_sb_pos") & 15))
	echo $((_sb_pos + $3 * (20 + 12 * _sb_assoc)))
}

# nr_sel BDF IDE_OFF: number of Selective IDE Stream blocks.
nr_sel() {
	echo $((((($(cfg_rdn "$1" $(($2 + 4)))) >> 16) & 0xff) + 1))
}

# sel_status BDF BLOCK: the block's status register.
sel_status() {
	cfg_rdn "$1" $(($2 + 8))
}

# enabled_id BDF: "<stream id> <status>" of the enabled selective block, or "".
enabled_id() {
	_ei_cap=$(ext_cap "$1" $PCI_EXT_CAP_ID_IDE)
	_ei_n=$(nr_sel "$1" "$_ei_cap")
	_ei_i=0
	while [ "$_ei_i" -lt "$_ei_n" ]; do
		_ei_b=$(sel_block "$1" "$_ei_cap" "$_ei_i")
		_ei_c=$(cfg_rdn "$1" $((_ei_b + 4)))
		if [ $((_ei_c & IDE_SEL_EN)) -ne 0 ]; then
			echo "$(((_ei_c >> 24) & 0xff)) $(sel_status "$1" "$_ei_b")"
			return 0
		fi
		_ei_i=$((_ei_i + 1))
	done
	echo ""
}

# variant_of I: endpoint I's variant ("" for the plain ones).
variant_of() {
	for _vo in $COCO_VARIANTS; do
		[ "${_vo%%:*}" = "$1" ] && { echo "${_vo#*:}"; return 0; }
	done
	echo ""
}

# ep_bdf I: endpoint I's BDF (bus I+1).
ep_bdf() {
	printf '0000:%02x:00.0\n' $(($1 + 1))
}

# rp_of BDF: its parent (the root port) in sysfs.
rp_of() {
	_ro=$(readlink -f "$COCO_PCI/$1")
	_ro=${_ro%/*}
	echo "${_ro##*/}"
}


# native_tsm: the native backend as the kernel's link TSM, "tsmN" (the
# /sys/class/tsm entry whose device is the faux device "coco").
native_tsm() {
	for _nt in /sys/class/tsm/tsm*; do
		[ "$(basename "$(readlink -f "$_nt/device" 2>/dev/null)")" = coco ] && { basename "$_nt"; return 0; }
	done
	return 1
}

# need_ide_endpoint BDF: for a test of the IDE backend on endpoint BDF: skips
# the whole test (and exits) unless running as root with BDF's IDE capability
# (the tee-io platform); loads coco.ko if needed.
need_ide_endpoint() {
	if [ "$(id -u)" != 0 ]; then
		ktap_skip_all "needs root"
		exit "$KSFT_SKIP"
	fi
	if [ ! -r "$COCO_PCI/$1/config" ] || [ "$(ext_cap "$1" $PCI_EXT_CAP_ID_IDE)" -eq 0 ]; then
		ktap_skip_all "no IDE capability on $1: not the tee-io platform"
		exit "$KSFT_SKIP"
	fi
	coco_ensure_loaded
}
