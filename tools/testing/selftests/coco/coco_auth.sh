#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# SPDM authentication on every tracked function: auth_status, spdm_version,
# algorithms, cert_slot, challenge, authenticated, certificate_chain (DER
# certificates that exactly fill the file); a rescan authenticates again with
# the same outcome.
#
# Environment: COCO_ENDPOINTS (number of emulated endpoints),
# COCO_EXPECTED_SPDM_VERSION (negotiated version, default 1.3: the endpoint
# offers up to 1.3), COCO_EXPECTED_ALGORITHMS (default "ecdsa-p384 sha512":
# the endpoint's default leaf key is P-384, and it selects the strongest
# hash offered, SHA-512).

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

N=${COCO_ENDPOINTS:-}
EXP_VERSION=${COCO_EXPECTED_SPDM_VERSION:-1.3}
EXP_ALGS=${COCO_EXPECTED_ALGORITHMS:-ecdsa-p384 sha512}

cleanup() {
	[ -n "$COCO_TMP" ] && rm -rf "$COCO_TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

ktap_print_header
ktap_set_plan 11

DEVS=$(coco_devices)
COUNT=$(coco_count)
coco_diag "tracked functions ($COUNT):" $DEVS

# coco_all_tracked FN: the expected functions are tracked and FN passes for
# every one of them.
coco_all_tracked() {
	coco_expected_count && coco_for_all "$1"
}

# auth_settled BDF...: every auth_status is readable and not "pending".
auth_settled() {
	for _as_b in "$@"; do
		_as_s=$(coco_attr "$_as_b" auth_status)
		[ -n "$_as_s" ] && [ "$_as_s" != pending ] || return 1
	done
	return 0
}

# attr_is BDF NAME VALUE
attr_is() {
	_ai=$(coco_attr "$1" "$2")
	[ "$_ai" = "$3" ] && return 0
	coco_diag "$1: $2 '$_ai', expected '$3'"
	return 1
}

check_auth_ok() { attr_is "$1" auth_status ok; }
wait_auth() {
	coco_poll 20 auth_settled $DEVS
	coco_all_tracked check_auth_ok
}
coco_check "auth_status becomes ok within 20 s on every tracked function" wait_auth

check_version() { attr_is "$1" spdm_version "$EXP_VERSION"; }
coco_check "spdm_version is the expected negotiated version" coco_all_tracked check_version

check_algs() { attr_is "$1" algorithms "$EXP_ALGS"; }
coco_check "algorithms names the expected signature and hash" coco_all_tracked check_algs

check_slot_challenge() {
	attr_is "$1" cert_slot 0 && attr_is "$1" challenge ok || return 1
	_au=$(cat "$COCO_PCI/$1/authenticated" 2>/dev/null)
	[ "$_au" = 1 ] && return 0
	coco_diag "$1: authenticated '$_au', expected '1'"
	return 1
}
coco_check "cert_slot is 0, challenge is ok and authenticated is 1" coco_all_tracked check_slot_challenge

# der_walk FILE: prints "<certificates> <bytes covered> <file size>" for the
# back-to-back DER SEQUENCEs (30 82 hh ll: long form, 2 length bytes, as
# certificates of 256 bytes to 64 KiB are) at the start of FILE; stops at
# the first element that is not one.
der_walk() {
	od -An -v -tx1 "$1" | awk '
		{ for (i = 1; i <= NF; i++) b[n++] = $i }
		function hex(s) { return index("0123456789abcdef", substr(s, 1, 1)) * 16 - 16 + \
			index("0123456789abcdef", substr(s, 2, 1)) - 1 }
		END {
			o = 0; c = 0
			while (o + 4 <= n && b[o] == "30" && b[o + 1] == "82") {
				len = hex(b[o + 2]) * 256 + hex(b[o + 3]) + 4
				if (o + len > n) break
				o += len; c++
			}
			print c, o, n
		}'
}

check_chain() {
	_f="$COCO_PCI/$1/coco/certificate_chain"
	_w=$(der_walk "$_f")
	set -- "$1" $_w
	if [ "${4:-0}" -eq 0 ]; then
		coco_diag "$1: certificate_chain is empty"
		return 1
	fi
	if [ "$2" -lt 2 ] || [ "$3" -ne "$4" ]; then
		coco_diag "$1: certificate_chain: $2 DER certificates covering $3 of $4 bytes" \
			"$1: starts with $(od -An -tx1 -N8 "$_f")"
		return 1
	fi
	return 0
}
coco_check "certificate_chain is two or more DER certificates that exactly fill it" \
	coco_all_tracked check_chain

check_mode() {
	_ok=0
	for _f in auth_status spdm_version algorithms cert_slot challenge certificate_chain; do
		_m=$(stat -c %a "$COCO_PCI/$1/coco/$_f" 2>/dev/null)
		[ "$_m" = 444 ] || { coco_diag "$1: coco/$_f has mode '$_m', wanted 444"; _ok=1; }
	done
	return "$_ok"
}
coco_check "the authentication files have mode 444" coco_all_tracked check_mode

snapshot() {
	for _sn_b in $DEVS; do
		printf '%s|%s|%s|%s|%s\n' "$_sn_b" "$(coco_attr "$_sn_b" spdm_version)" \
			"$(coco_attr "$_sn_b" algorithms)" "$(coco_attr "$_sn_b" cert_slot)" \
			"$(cksum <"$COCO_PCI/$_sn_b/coco/certificate_chain" 2>/dev/null)"
	done
}
BEFORE=$(snapshot)

check_rescan() {
	coco_rescan "$1"
	_rc=$?
	if [ "$_rc" -ne 0 ]; then
		coco_run_diag "$1: echo 1 > coco/rescan" "$_rc"
		return 1
	fi
	attr_is "$1" auth_status ok && attr_is "$1" challenge ok
}
coco_check "rescan succeeds and authenticates again (auth_status ok right after)" \
	coco_all_tracked check_rescan

check_same() {
	_after=$(snapshot)
	[ "$_after" = "$BEFORE" ] && [ "$COUNT" -ge 1 ] && return 0
	coco_diag "before rescan:"
	printf '%s\n' "$BEFORE" | coco_diag_stream
	coco_diag "after rescan:"
	printf '%s\n' "$_after" | coco_diag_stream
	return 1
}
coco_check "rescan: version, algorithms, slot and chain unchanged" check_same

check_log_ok() {
	_n=$(dmesg | grep -c 'coco: authenticated: ')
	[ "$_n" -ge "$COUNT" ] && [ "$COUNT" -ge 1 ] && return 0
	coco_diag "$_n 'coco: authenticated' lines for $COUNT functions"
	return 1
}
coco_check "kernel log has a coco: authenticated line per function" check_log_ok

check_log_fail() {
	_err=$(dmesg | grep 'coco: authentication failed')
	[ -z "$_err" ] && return 0
	printf '%s\n' "$_err" | coco_diag_stream 20
	return 1
}
coco_check "kernel log has no coco: authentication failed line" check_log_fail

# The rescan above re-authenticated with the slots' digests unchanged: the
# chains read before are used again and GET_CERTIFICATE is skipped, which the
# log lines show ("chains: R read, C cached") with fewer exchanges than the
# device's first authentication (the one before the trust anchor was loaded
# ends "not authenticated"; it read every chain, and tried every slot, each
# on its own connection, with the chains read cached).
check_chain_cached() {
	_fa_rc=0
	for _b in $DEVS; do
		_first=$(dmesg | grep -F "$_b" | grep -E 'coco: (authenticated|not authenticated): ' | head -n 1)
		_last=$(dmesg | grep -F "$_b" | grep 'coco: authenticated: ' | tail -n 1)
		case "$_first" in *"chains: "[1-8]" read, "*) ;; *)
			coco_diag "$_b: first authentication did not read the chains: $_first"
			_fa_rc=1 ;;
		esac
		case "$_last" in *"chains: 0 read, "[1-8]" cached"*) ;; *)
			coco_diag "$_b: re-authentication did not use the cached chains: $_last"
			_fa_rc=1 ;;
		esac
		_n1=$(printf '%s\n' "$_first" | sed -n 's/.* \([0-9]*\) SPDM exchanges.*/\1/p')
		_n2=$(printf '%s\n' "$_last" | sed -n 's/.* \([0-9]*\) SPDM exchanges.*/\1/p')
		if [ -z "$_n1" ] || [ -z "$_n2" ] || [ "$_n2" -ge "$_n1" ]; then
			coco_diag "$_b: exchanges first '$_n1', after rescan '$_n2'"
			_fa_rc=1
		fi
	done
	return "$_fa_rc"
}
coco_check "re-authentication skips GET_CERTIFICATE when the digest is unchanged" check_chain_cached

ktap_finished
