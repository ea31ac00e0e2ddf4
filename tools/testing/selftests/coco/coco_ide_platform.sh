#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The emulated TEE-IO platform (Documentation/coco/tee-io-platform.rst) as
# Linux sees it, through config space only (sysfs config, as root):
#  - Linux 7.3's IDE code found the IDE capabilities of the endpoints and of
#    their root ports (the host bridge's available_secure_streams, the
#    reserved stream ID 0xff it writes into idle Selective IDE Stream blocks),
#    and ignored the endpoint's capability under a root port without one;
#  - Device Capabilities TEE-IO supported;
#  - an enabled stream without keys reads Insecure; a root port with keys
#    programmed through its key-programming VSEC reads Secure while the
#    endpoint without keys stays Insecure;
#  - with the endpoint's --ide-test-keys fixture (variant ide-keys:STREAM)
#    and matching root-port keys both ends read Secure; with mismatched keys
#    both report the integrity failure once both are enabled, and the root
#    port logs an AER Uncorrectable Internal Error.
#
# Needs the rig's tee-io platform (scripts/qemu-run.sh --platform tee-io);
# skips otherwise. Endpoint i is the NVMe function on bus i+1.
#
# Environment: COCO_VARIANTS ("<index>:<variant> ..."): ide-keys:S gives the
# keyed endpoint, platform:rp-no-ide / platform:no-ide / platform:no-tee-io
# the endpoints that lack a piece.

# shellcheck disable=SC2086

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

AER_UNC_INTN=0x400000

# ------------------------------------------------------------ IDE keys

# fixture_hex STREAM DIR SUB [ifv]: coco-endpoint's --ide-test-keys key
# (or IFV) of the endpoint's pair (DIR 0 RX, 1 TX; SUB 0 PR, 1 NPR, 2 CPL).
fixture_hex() {
	_fh_seed="coco-ide-test\\$(printf %03o "$1")\\$(printf %03o "$2")\\$(printf %03o "$3")"
	if [ "$4" = ifv ]; then
		# shellcheck disable=SC2059
		printf "${_fh_seed}ifv" | sha256sum | cut -c1-16
	else
		# shellcheck disable=SC2059
		printf "$_fh_seed" | sha256sum | cut -c1-64
	fi
}

# rp_program RP VSEC STREAM MODE: program and start root-port keys for the six
# pairs of STREAM. MODE match: the root port's TX keys are the endpoint
# fixture's RX keys and the reverse; same: the fixture's own directions (a
# mismatch); other: keys no endpoint has.
rp_program() {
	for _rp_d in 0 1; do
		for _rp_s in 0 1 2; do
			case "$4" in
			match) _rp_ed=$((1 - _rp_d)) ;;
			*) _rp_ed=$_rp_d ;;
			esac
			_rp_key=$(fixture_hex "$3" "$_rp_ed" "$_rp_s")
			_rp_ifv=$(fixture_hex "$3" "$_rp_ed" "$_rp_s" ifv)
			[ "$4" = other ] && _rp_key=$(printf '%s' "other$_rp_key" | sha256sum | cut -c1-64)
			# KEY[0..7] and IFV[0..1] are contiguous: ten dword writes
			cfg_wr_bytes "$1" $(($2 + 0x10)) "$_rp_key$_rp_ifv"
			_rp_sel=$(($3 | (_rp_d << 8) | (_rp_s << 9)))
			cfg_wr "$1" $(($2 + 8)) $((_rp_sel | (1 << 12)))
			cfg_wr "$1" $(($2 + 8)) $((_rp_sel | (2 << 12)))
		done
	done
}

# go_state RP VSEC STREAM: the VSEC's GO_STATE for STREAM.
go_state() {
	cfg_wr "$1" $(($2 + 8)) "$3"
	echo $(($(cfg_rdn "$1" $(($2 + 0x38))) & 0x3f))
}

# enable BDF BLOCK STREAM / disable BDF BLOCK: the block's control register
# (a disabled block gets the reserved stream ID back, as Linux left it).
enable() {
	cfg_wr "$1" $(($2 + 4)) $((($3 << 24) | IDE_SEL_EN))
}
disable() {
	cfg_wr "$1" $(($2 + 4)) $((0xff << 24))
}

# expect_status WHAT BDF BLOCK VALUE: the block reads VALUE (else a diagnostic).
expect_status() {
	_es_v=$(sel_status "$2" "$3")
	[ "$_es_v" -eq $(($4)) ] && return 0
	coco_diag "$1: $2 status $(printf %#x "$_es_v"), wanted $(printf %#x $(($4)))"
	return 1
}

# ------------------------------------------------------------ the platform

[ -z "$COCO_VARIANTS" ] && [ -r /coco/run.env ] && . /coco/run.env
N=${COCO_ENDPOINTS:-1}

ktap_print_header
# Endpoint 0 is a plain one: it has IDE on the tee-io platform. Root reads and
# writes config space.
EP0=$(ep_bdf 0)
need_ide_endpoint "$EP0"

# The keyed endpoint (variant ide-keys:S), if any.
KEYED= KSTREAM=
i=0
while [ "$i" -lt "$N" ]; do
	for _p in $(variant_of "$i" | tr '+' ' '); do
		case "$_p" in
		ide-keys:*) KEYED=$(ep_bdf "$i") KSTREAM=${_p#ide-keys:} ;;
		esac
	done
	i=$((i + 1))
done

ktap_set_plan 13

# --- what Linux's IDE code saw

check_caps() {
	_cc_rc=0
	i=0
	while [ "$i" -lt "$N" ]; do
		_b=$(ep_bdf "$i")
		_v=$(variant_of "$i")
		_rp=$(rp_of "$_b")
		_ide=$(ext_cap "$_b" $PCI_EXT_CAP_ID_IDE)
		_rpide=$(ext_cap "$_rp" $PCI_EXT_CAP_ID_IDE)
		_tee=$(($(cfg_rdn "$_b" $(($(pcie_cap "$_b") + 4))) & 0x40000000))
		case "+$_v+" in *+platform:no-ide+*) _want_ide=0 ;; *) _want_ide=1 ;; esac
		case "+$_v+" in *+platform:no-tee-io+*) _want_tee=0 ;; *) _want_tee=1 ;; esac
		case "+$_v+" in *+platform:rp-no-ide+*) _want_rp=0 ;; *) _want_rp=1 ;; esac
		if [ $((_ide != 0)) -ne "$_want_ide" ] || [ $((_tee != 0)) -ne "$_want_tee" ] ||
			[ $((_rpide != 0)) -ne "$_want_rp" ]; then
			coco_diag "endpoint $i $_b ($_v): IDE at $_ide, TEE-IO $_tee, root port $_rp IDE at $_rpide"
			_cc_rc=1
		fi
		i=$((i + 1))
	done
	return "$_cc_rc"
}
coco_check "IDE and TEE-IO capabilities as the platform variants say" check_caps

check_streams() {
	_hb=$(readlink -f "$COCO_PCI/$EP0")
	_hb=${_hb%%/0000:*}
	_a=$(cat "$_hb/available_secure_streams" 2>/dev/null)
	coco_diag "$_hb/available_secure_streams: '$_a'"
	case "$_a" in '' | *[!0-9]*) return 1 ;; esac
	[ "$_a" -ge 1 ]
}
coco_check "the host bridge reports available_secure_streams" check_streams

# reserved_ids BDF WANT: every selective block's stream ID is WANT (0xff:
# Linux's pci_ide_init() ran; 0: it ignored the capability).
reserved_ids() {
	_ri_ide=$(ext_cap "$1" $PCI_EXT_CAP_ID_IDE)
	[ "$_ri_ide" -ne 0 ] || return 1
	_ri_n=$(nr_sel "$1" "$_ri_ide")
	_ri_i=0
	while [ "$_ri_i" -lt "$_ri_n" ]; do
		_ri_c=$(cfg_rdn "$1" $(($(sel_block "$1" "$_ri_ide" "$_ri_i") + 4)))
		if [ $((_ri_c >> 24)) -ne $(($2)) ]; then
			coco_diag "$1: block $_ri_i control $(printf %#x "$_ri_c"), wanted stream ID $(printf %#x $(($2)))"
			return 1
		fi
		_ri_i=$((_ri_i + 1))
	done
}

check_reserved() {
	_cr_rc=0
	i=0
	while [ "$i" -lt "$N" ]; do
		_b=$(ep_bdf "$i")
		case "+$(variant_of "$i")+" in
		*+platform:no-ide+*) ;;
		*+platform:rp-no-ide+*) reserved_ids "$_b" 0 || _cr_rc=1 ;;
		*) { reserved_ids "$_b" 0xff && reserved_ids "$(rp_of "$_b")" 0xff; } || _cr_rc=1 ;;
		esac
		i=$((i + 1))
	done
	return "$_cr_rc"
}
coco_check "Linux wrote the reserved stream ID into idle blocks, not under a root port without IDE" \
	check_reserved

# --- streams on endpoint 0 (no keys)

RP0=$(rp_of "$EP0")
EIDE=$(ext_cap "$EP0" $PCI_EXT_CAP_ID_IDE)
RIDE=$(ext_cap "$RP0" $PCI_EXT_CAP_ID_IDE)
VSEC=$(ext_cap "$RP0" $PCI_EXT_CAP_ID_VNDR 0xc0c0)
EB=$(sel_block "$EP0" "$EIDE" 0)
RB=$(sel_block "$RP0" "$RIDE" 0)
S=33

coco_check "the root port has the key-programming VSEC" [ "$VSEC" -ne 0 ]

check_ep_no_keys() {
	enable "$EP0" "$EB" "$S"
	expect_status "endpoint without keys" "$EP0" "$EB" 0
}
coco_check "an enabled endpoint stream without keys reads Insecure" check_ep_no_keys

check_rp_no_keys() {
	enable "$RP0" "$RB" "$S"
	_r=0
	expect_status "root port without keys" "$RP0" "$RB" 0 || _r=1
	disable "$RP0" "$RB"
	return "$_r"
}
coco_check "an enabled root-port stream without keys reads Insecure" check_rp_no_keys

check_rp_keys() {
	rp_program "$RP0" "$VSEC" "$S" other
	_g=$(go_state "$RP0" "$VSEC" "$S")
	[ "$_g" -eq 63 ] || { coco_diag "GO_STATE $(printf %#x "$_g") after programming"; return 1; }
	enable "$RP0" "$RB" "$S"
	_r=0
	expect_status "root port with keys" "$RP0" "$RB" $IDE_SECURE || _r=1
	expect_status "endpoint without keys" "$EP0" "$EB" 0 || _r=1
	return "$_r"
}
coco_check "the root port with keys reads Secure while the endpoint without keys stays Insecure" \
	check_rp_keys

check_cleanup0() {
	disable "$RP0" "$RB"
	disable "$EP0" "$EB"
	_g=$(go_state "$RP0" "$VSEC" "$S")
	[ "$_g" -eq 0 ] || { coco_diag "GO_STATE $(printf %#x "$_g") after disabling"; return 1; }
	expect_status "disabled root port" "$RP0" "$RB" 0 && expect_status "disabled endpoint" "$EP0" "$EB" 0
}
coco_check "disabling both ends reads Insecure and forgets the root port's keys" check_cleanup0

# --- the keyed endpoint

if [ -z "$KEYED" ]; then
	for _t in "matching keys: both ends Secure" "the endpoint alone reads Secure" \
		"mismatched keys: both ends report the integrity failure" \
		"the root port logs an uncorrectable internal error" \
		"disabling clears the failure"; do
		ktap_test_skip "$_t (no endpoint with variant ide-keys:S)"
	done
else
	KRP=$(rp_of "$KEYED")
	KEB=$(sel_block "$KEYED" "$(ext_cap "$KEYED" $PCI_EXT_CAP_ID_IDE)" 0)
	KRB=$(sel_block "$KRP" "$(ext_cap "$KRP" $PCI_EXT_CAP_ID_IDE)" 0)
	KVSEC=$(ext_cap "$KRP" $PCI_EXT_CAP_ID_VNDR 0xc0c0)
	KAER=$(ext_cap "$KRP" $PCI_EXT_CAP_ID_ERR)
	coco_diag "keyed endpoint $KEYED (stream $KSTREAM), root port $KRP"

	check_ep_alone() {
		enable "$KEYED" "$KEB" "$KSTREAM"
		expect_status "keyed endpoint" "$KEYED" "$KEB" $IDE_SECURE
	}
	coco_check "the endpoint alone reads Secure" check_ep_alone

	check_match() {
		rp_program "$KRP" "$KVSEC" "$KSTREAM" match
		enable "$KRP" "$KRB" "$KSTREAM"
		_r=0
		expect_status "root port" "$KRP" "$KRB" $IDE_SECURE || _r=1
		expect_status "endpoint" "$KEYED" "$KEB" $IDE_SECURE || _r=1
		disable "$KRP" "$KRB"
		return "$_r"
	}
	coco_check "matching keys: both ends Secure" check_match

	check_mismatch() {
		rp_program "$KRP" "$KVSEC" "$KSTREAM" same
		enable "$KRP" "$KRB" "$KSTREAM"
		_r=0
		expect_status "root port" "$KRP" "$KRB" $IDE_FAIL || _r=1
		expect_status "endpoint" "$KEYED" "$KEB" $IDE_FAIL || _r=1
		return "$_r"
	}
	coco_check "mismatched keys: both ends report the integrity failure" check_mismatch

	check_aer() {
		[ "$KAER" -ne 0 ] || return 1
		_u=$(cfg_rdn "$KRP" $((KAER + 4)))
		coco_diag "root port AER uncorrectable status $(printf %#x "$_u")"
		[ $((_u & AER_UNC_INTN)) -ne 0 ] || return 1
		cfg_wr "$KRP" $((KAER + 4)) $AER_UNC_INTN
	}
	coco_check "the root port logs an uncorrectable internal error" check_aer

	check_clear() {
		disable "$KRP" "$KRB"
		disable "$KEYED" "$KEB"
		expect_status "root port" "$KRP" "$KRB" 0 && expect_status "endpoint" "$KEYED" "$KEB" 0
	}
	coco_check "disabling clears the failure" check_clear
fi

ktap_finished
