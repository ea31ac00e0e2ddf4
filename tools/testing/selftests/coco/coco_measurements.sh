#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Signed measurements: measurements/ holds exactly the blocks the endpoint is
# configured with, and evidence that coco-verify (a userspace tool that does
# not trust the kernel) re-checks; a tampered copy of the evidence is refused;
# a root-supplied nonce is used by the next reading; refresh after a firmware
# update shows the new values; a failed refresh keeps the old reading, marked
# stale.
#
# Environment: COCO_ENDPOINTS. Needs the rig's references (/coco/
# measurements.ref and measurements-updated.ref: the endpoints' blocks before
# and after a firmware update), its trust anchor (/coco/root.der), coco-verify
# and the host (prints "@@coco-host fw_update 0" and "fw_revert 0").

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

REF=${COCO_MEAS_REF:-/coco/measurements.ref}
REF_UPDATED=${COCO_MEAS_REF_UPDATED:-/coco/measurements-updated.ref}

coco_need_endpoints "no host to update an endpoint's firmware"

cleanup() {
	coco_host fw_revert 0
	[ -n "$(awk '$8 ~ /^asymmetri/ && $9 == "coco-rig-root:" { print $1 }' /proc/keys)" ] ||
		coco_trust_root
	[ -n "$B" ] && coco_write 30 "$COCO_PCI/$B/measurements/refresh" 1
	coco_default_cleanup
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

if [ ! -r "$REF" ] || [ ! -r "$REF_UPDATED" ] || ! command -v coco-verify >/dev/null; then
	ktap_skip_all "needs coco-verify and the rig's measurement references"
	exit "$KSFT_SKIP"
fi
ktap_set_plan 14
coco_tmp_init
coco_log_mark measurements

DEVS=$(coco_devices)
COUNT=$(coco_count)
# Endpoint 0 is behind the first root port.
B=0000:01:00.0
M="$COCO_PCI/$B/measurements"
coco_diag "tracked functions ($COUNT):" $DEVS "firmware update target: $B"

mattr() {
	cat "$COCO_PCI/$1/measurements/$2" 2>/dev/null
}

# blocks BDF: the blocks (measurements/<index>_type, _format, _value) as
# reference lines "INDEX TYPE FORMAT HEX".
blocks() {
	for _v in "$COCO_PCI/$1"/measurements/[0-9]*_value; do
		[ -f "$_v" ] || continue
		_p=${_v%_value}
		echo "${_p##*/} $(cat "${_p}_type") $(cat "${_p}_format") $(cat "$_v")"
	done | sort -n
}

# verify BDF [ARGS]: coco-verify on BDF with the trust anchor; its output in
# COCO_RUN_OUT.
verify() {
	_vb=$1
	shift
	coco_run 30 coco-verify --device "$COCO_PCI/$_vb" --trust-anchor "$COCO_ROOT_DER" "$@"
}

check_read() {
	_rc=0
	for _b in $DEVS; do
		_st=$(mattr "$_b" status) _stale=$(mattr "$_b" stale) _slot=$(mattr "$_b" slot)
		_sig=$(mattr "$_b" signature_algorithm) _algs=$(coco_attr "$_b" algorithms)
		if [ "$_st" != ok ] || [ "$_stale" != 0 ] || [ "$_slot" != "$(coco_attr "$_b" cert_slot)" ] ||
			[ "$_sig ${_algs#* }" != "$_algs" ] || [ "$(mattr "$_b" fresh_capable)" != 1 ]; then
			coco_diag "$_b: status '$_st' stale '$_stale' slot '$_slot' algorithm '$_sig' ('$_algs')"
			_rc=1
		fi
	done
	[ "$COUNT" -ge 1 ] && return "$_rc"
}
coco_check "every function: status ok, not stale, signed by the authenticated slot and key" check_read

check_blocks() {
	_rc=0
	for _b in $DEVS; do
		blocks "$_b" >"$COCO_TMP/blocks"
		if ! sort -n "$REF" | cmp -s - "$COCO_TMP/blocks"; then
			coco_diag "$_b: measurements/ differs from the endpoint's blocks:"
			sort -n "$REF" | diff - "$COCO_TMP/blocks" | coco_diag_stream 12
			_rc=1
		fi
	done
	[ "$COUNT" -ge 1 ] && return "$_rc"
}
coco_check "measurements/<index>_{type,format,value} are exactly the endpoint's blocks" check_blocks

check_verify() {
	_rc=0
	for _b in $DEVS; do
		if verify "$_b" --reference "$REF"; then
			coco_diag "$COCO_RUN_OUT"
		else
			coco_run_diag "coco-verify $_b" "$?"
			_rc=1
		fi
	done
	[ "$COUNT" -ge 1 ] && return "$_rc"
}
coco_check "coco-verify re-checks every reading (chain, signature over L1/L2, reference)" check_verify

# copy_evidence BDF DEST: the sysfs evidence as plain files.
copy_evidence() {
	rm -rf "$2"
	mkdir -p "$2/measurements" "$2/certificates"
	for _f in "$COCO_PCI/$1"/certificates/*; do cat "$_f" >"$2/certificates/${_f##*/}"; done
	# measurements/ is a plain directory of files, the blocks' among them;
	# refresh is write-only.
	for _f in "$COCO_PCI/$1"/measurements/*; do
		_n=${_f##*/}
		[ "$_n" = refresh ] || cat "$_f" >"$2/measurements/$_n"
	done
}

# flip FILE OFFSET: invert the bits of one byte.
flip() {
	_byte=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "$(printf '\\%03o' $((255 - _byte)))" |
		dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}

check_tamper() {
	_e="$COCO_TMP/evidence"
	copy_evidence "$B" "$_e"
	coco_run 30 coco-verify --device "$_e" --reference "$REF" ||
		{ coco_run_diag "coco-verify on an exact copy" "$?"; return 1; }
	_rc=0
	flip "$_e/measurements/transcript" 300
	if coco_run 30 coco-verify --device "$_e"; then
		coco_diag "a flipped transcript byte verified"; _rc=1
	else
		coco_diag "flipped transcript: $COCO_RUN_OUT"
	fi
	copy_evidence "$B" "$_e"
	awk '{ c = substr($0, 1, 1); print (c == "0" ? "1" : "0") substr($0, 2) }' \
		"$_e/measurements/2_value" >"$_e/v" && mv "$_e/v" "$_e/measurements/2_value"
	if coco_run 30 coco-verify --device "$_e"; then
		coco_diag "a changed block value verified"; _rc=1
	fi
	copy_evidence "$B" "$_e"
	flip "$_e/measurements/signature" 5
	if coco_run 30 coco-verify --device "$_e"; then
		coco_diag "a flipped signature byte verified"; _rc=1
	fi
	return "$_rc"
}
coco_check "coco-verify refuses tampered evidence (transcript, value, signature)" check_tamper

check_modes() {
	_rc=0
	for _f in status:444 stale:444 timestamp:444 fresh_capable:444 spdm_version:444 \
		hash_algorithm:444 signature_algorithm:444 slot:444 nonce:644 refresh:200 \
		transcript:444 signature:444 1_type:444 1_format:444 1_value:444; do
		_m=$(stat -c %a "$M/${_f%:*}" 2>/dev/null)
		[ "$_m" = "${_f#*:}" ] || { coco_diag "measurements/${_f%:*} mode '$_m', wanted ${_f#*:}"; _rc=1; }
	done
	return "$_rc"
}
coco_check "measurements/ files: nonce 644, refresh 200, the others 444" check_modes

# --- a verifier's nonce -----------------------------------------------------
NONCE=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
check_nonce() {
	coco_write 5 "$M/nonce" 1234 && { coco_diag "a short nonce was accepted"; return 1; }
	coco_write 5 "$M/nonce" "$(echo "$NONCE" | sed 's/^./g/')" && { coco_diag "a non-hex nonce was accepted"; return 1; }
	coco_write 5 "$M/nonce" "$NONCE" || { coco_run_diag "write nonce" "$?"; return 1; }
	coco_write 30 "$M/refresh" 1 || { coco_run_diag "refresh" "$?"; return 1; }
	_n=$(mattr "$B" nonce)
	[ "$_n" = "$NONCE" ] || { coco_diag "nonce '$_n', wrote '$NONCE'"; return 1; }
	dmesg | grep -F "$B" | grep 'coco: measurements: ' | tail -n 1 | grep -q 'root-supplied nonce' ||
		{ coco_diag "the log does not say the nonce was root's"; return 1; }
	verify "$B" --reference "$REF" || { coco_run_diag "coco-verify" "$?"; return 1; }
	case "$COCO_RUN_OUT" in *"$NONCE"*) ;; *) coco_diag "coco-verify did not report the nonce: $COCO_RUN_OUT"; return 1 ;; esac
}
coco_check "a root-written nonce (64 hex digits) is signed by the next reading; others refused" check_nonce

check_random_again() {
	coco_write 30 "$M/refresh" 1 || { coco_run_diag "refresh" "$?"; return 1; }
	[ "$(mattr "$B" nonce)" != "$NONCE" ]
}
coco_check "the nonce is used once: the next refresh uses a fresh random one" check_random_again

# --- firmware update ----------------------------------------------------------
value_of() { cat "$M/${1}_value" 2>/dev/null; }
OLD_FW=$(value_of 2)
fw_changed() {
	coco_write 30 "$M/refresh" 1 >/dev/null
	[ -n "$(value_of 2)" ] && [ "$(value_of 2)" != "$OLD_FW" ]
}
check_update() {
	coco_host fw_update 0
	coco_poll 20 fw_changed || { coco_diag "mutable_firmware unchanged 20 s after the update"; return 1; }
	blocks "$B" >"$COCO_TMP/blocks"
	sort -n "$REF_UPDATED" | cmp -s - "$COCO_TMP/blocks" && return 0
	sort -n "$REF_UPDATED" | diff - "$COCO_TMP/blocks" | coco_diag_stream 12
	return 1
}
coco_check "after a firmware update, refresh shows the endpoint's new blocks" check_update

check_verify_update() {
	verify "$B" --reference "$REF_UPDATED" || { coco_run_diag "coco-verify (new reference)" "$?"; return 1; }
	verify "$B" --reference "$REF"
	_rc=$?
	coco_diag "against the old reference: exit $_rc: $COCO_RUN_OUT"
	[ "$_rc" = 1 ]
}
coco_check "coco-verify: the new reading verifies; against the old reference it fails (exit 1)" check_verify_update

fw_back() {
	coco_write 30 "$M/refresh" 1 >/dev/null
	[ "$(value_of 2)" = "$OLD_FW" ]
}
check_revert() {
	coco_host fw_revert 0
	coco_poll 20 fw_back && verify "$B" --reference "$REF"
}
coco_check "after the firmware is reverted, refresh matches the original reference again" check_revert

# --- a failed refresh ---------------------------------------------------------
KEY=$(awk '$8 ~ /^asymmetri/ && $9 == "coco-rig-root:" { print $1; exit }' /proc/keys)
check_stale() {
	[ -n "$KEY" ] || { coco_diag "no trust anchor in /proc/keys"; return 1; }
	blocks "$B" >"$COCO_TMP/before"
	coco_run 10 keyctl unlink "$((0x$KEY))" %:.coco || { coco_run_diag "keyctl unlink" "$?"; return 1; }
	coco_write 30 "$M/refresh" 1 && { coco_diag "refresh succeeded without a trusted root"; return 1; }
	_st=$(mattr "$B" status) _stale=$(mattr "$B" stale)
	coco_diag "after the failed refresh: status '$_st', stale '$_stale'"
	blocks "$B" >"$COCO_TMP/after"
	[ "$_stale" = 1 ] && [ "$_st" = "error: not read: the device is not authenticated" ] &&
		cmp -s "$COCO_TMP/before" "$COCO_TMP/after" && [ -s "$COCO_TMP/after" ]
}
coco_check "a failed refresh keeps the previous blocks, marked stale, with the reason" check_stale

check_stale_verify() {
	verify "$B" && { coco_diag "coco-verify accepted a stale reading"; return 1; }
	verify "$B" --allow-stale --reference "$REF" || { coco_run_diag "coco-verify --allow-stale" "$?"; return 1; }
}
coco_check "coco-verify refuses the stale reading unless --allow-stale (then it still verifies)" check_stale_verify

check_fresh_again() {
	coco_trust_root || return 1
	coco_write 30 "$M/refresh" 1 || { coco_run_diag "refresh" "$?"; return 1; }
	[ "$(mattr "$B" stale)" = 0 ] && [ "$(mattr "$B" status)" = ok ]
}
coco_check "root trusted again: refresh succeeds, no longer stale" check_fresh_again

check_log_clean() {
	_err=$(coco_log_since_raw | coco_log_errors)
	[ -z "$_err" ] && return 0
	printf '%s\n' "$_err" | coco_diag_stream 20
	return 1
}
coco_check "no error or splat in the kernel log" check_log_clean

ktap_finished
