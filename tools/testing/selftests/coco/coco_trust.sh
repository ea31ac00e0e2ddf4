#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Trust and the administrator's interface: authenticated, certificates/slotN
# (parsed by openssl, root side first: the trust anchor), the CMA identity
# against the function's IDs, the .coco keyring (a device is trusted only
# while its root is in it), the preferred certificate slot, file modes, and
# concurrent readers during re-authentication.
#
# Environment: COCO_ENDPOINTS; COCO_ROOT_DER (the trust anchor the rig loaded,
# default /coco/root.der). A function with more than one populated slot is
# needed for the slot checks (the rig starts one with --variant slots:0,1,2).

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

# root_key: the serial of the rig's trust anchor in .coco (from /proc/keys,
# which cuts the type to 9 characters: the keys root adds are not searchable
# by a non-possessor), empty if absent.
root_key() {
	_rk=$(awk '$8 ~ /^asymmetri/ && $9 == "coco-rig-root:" { print $1; exit }' /proc/keys)
	[ -n "$_rk" ] && echo "$((0x$_rk))"
}

cleanup() {
	# Leave the trust anchor loaded and every device authenticated.
	[ -n "$(root_key)" ] || coco_trust_root
	for _b in $DEVS; do
		[ "$(cat "$COCO_PCI/$_b/authenticated" 2>/dev/null)" = 1 ] ||
			coco_write 15 "$COCO_PCI/$_b/authenticated" 1
		[ -e "$COCO_PCI/$_b/coco/preferred_slot" ] &&
			echo auto >"$COCO_PCI/$_b/coco/preferred_slot" 2>/dev/null
	done
	coco_default_cleanup
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

ktap_print_header
if [ ! -r "$COCO_ROOT_DER" ] || ! command -v keyctl >/dev/null || ! command -v openssl >/dev/null; then
	ktap_skip_all "needs keyctl, openssl and the rig's trust anchor ($COCO_ROOT_DER)"
	exit "$KSFT_SKIP"
fi
ktap_set_plan 11
coco_tmp_init

DEVS=$(coco_devices)
COUNT=$(coco_count)
coco_diag "tracked functions ($COUNT):" $DEVS

dev_attr() {
	cat "$COCO_PCI/$1/$2" 2>/dev/null
}

# A function with several populated slots, if any.
MULTI=
for _b in $DEVS; do
	_n=$(ls "$COCO_PCI/$_b/certificates" 2>/dev/null | wc -l)
	[ "$_n" -gt 1 ] && MULTI=$_b && break
done
coco_diag "function with several certificate slots: ${MULTI:-none}"

all_authenticated() {
	coco_expected_count || return 1
	for _b in $DEVS; do
		[ "$(dev_attr "$_b" authenticated)" = 1 ] || return 1
	done
}
check_authenticated() {
	coco_poll 30 all_authenticated && return 0
	for _b in $DEVS; do
		coco_diag "$_b: authenticated '$(dev_attr "$_b" authenticated)', auth_status '$(coco_attr "$_b" auth_status)'"
	done
	return 1
}
coco_check "authenticated is 1 on every tracked function (trust anchor in .coco)" check_authenticated

# check_certificates BDF: every certificates/slotN is a chain openssl reads,
# whose first certificate is the trust anchor; slot files exist exactly for
# the populated slots (the device's DIGESTS), the challenged slot's file
# equals coco/certificate_chain.
check_certificates() {
	_d="$COCO_PCI/$1/certificates"
	_files=$(ls "$_d" 2>/dev/null)
	[ -n "$_files" ] || { coco_diag "$1: no certificates/slot file"; return 1; }
	for _s in $_files; do
		case "$_s" in slot[0-7]) ;; *) coco_diag "$1: unexpected certificates/$_s"; return 1 ;; esac
		_pem="$COCO_TMP/$_s.pem"
		if ! openssl storeutl -noout -certs -text "$_d/$_s" >"$_pem.txt" 2>&1; then
			coco_diag "$1: openssl storeutl cannot read certificates/$_s"
			coco_diag_stream 5 <"$_pem.txt"
			return 1
		fi
		_n=$(grep -c '^[0-9]*: Certificate$' "$_pem.txt")
		[ "$_n" -ge 2 ] || { coco_diag "$1: certificates/$_s holds $_n certificates"; return 1; }
		# The first certificate, re-encoded to DER by openssl, is the trust anchor.
		openssl x509 -inform DER -in "$_d/$_s" -outform DER -out "$COCO_TMP/first.der" 2>/dev/null
		if ! cmp -s "$COCO_TMP/first.der" "$COCO_ROOT_DER"; then
			coco_diag "$1: the first certificate of certificates/$_s is not the trust anchor"
			return 1
		fi
	done
	_slot=$(coco_attr "$1" cert_slot)
	if ! cmp -s "$_d/slot$_slot" "$COCO_PCI/$1/coco/certificate_chain"; then
		coco_diag "$1: certificates/slot$_slot differs from coco/certificate_chain"
		return 1
	fi
	return 0
}
coco_check "certificates/slotN: openssl reads every chain, rooted in the trust anchor" \
	coco_for_all check_certificates

# check_identity BDF: the leaf's CMA identity names this function.
check_identity() {
	_v=$(sed 's/^0x//' "$COCO_PCI/$1/vendor")
	_dv=$(sed 's/^0x//' "$COCO_PCI/$1/device")
	_cc=$(sed 's/^0x//' "$COCO_PCI/$1/class")
	_rev=$(sed 's/^0x//' "$COCO_PCI/$1/revision")
	_ssv=$(sed 's/^0x//' "$COCO_PCI/$1/subsystem_vendor")
	_ss=$(sed 's/^0x//' "$COCO_PCI/$1/subsystem_device")
	_want="Vendor=$_v:Device=$_dv:CC=$_cc:REV=$_rev:SSVID=$_ssv:SSID=$_ss"
	_id=$(coco_attr "$1" cma_identity)
	_st=$(coco_attr "$1" cma_identity_status)
	[ "$_id" = "$_want" ] && [ "$_st" = match ] && return 0
	coco_diag "$1: cma_identity '$_id' ($_st), config space says '$_want'"
	return 1
}
coco_check "cma_identity names the function's IDs and cma_identity_status is match" \
	coco_for_all check_identity

check_modes() {
	_rc=0
	for _b in $DEVS; do
		for _f in authenticated:644 coco/preferred_slot:644 coco/cma_identity:444 \
			coco/cma_identity_status:444; do
			_m=$(stat -c %a "$COCO_PCI/$_b/${_f%:*}" 2>/dev/null)
			[ "$_m" = "${_f#*:}" ] || { coco_diag "$_b: ${_f%:*} mode '$_m', wanted ${_f#*:}"; _rc=1; }
		done
		for _f in "$COCO_PCI/$_b"/certificates/slot*; do
			_m=$(stat -c %a "$_f" 2>/dev/null)
			[ "$_m" = 444 ] || { coco_diag "$_f: mode '$_m', wanted 444"; _rc=1; }
		done
	done
	[ "$COUNT" -ge 1 ] && return "$_rc"
}
coco_check "authenticated and preferred_slot are 644, the other new files 444" check_modes

# --- the keyring decides -------------------------------------------------
B=$(echo $DEVS | cut -d' ' -f1)
KEY=$(root_key)
coco_log_mark trust

untrusted_after_unlink() {
	[ -n "$KEY" ] || { coco_diag "the trust anchor is not in %:.coco"; return 1; }
	coco_run 10 keyctl unlink "$KEY" %:.coco || { coco_run_diag "keyctl unlink" "$?"; return 1; }
	coco_write 15 "$COCO_PCI/$B/authenticated" 1
	_rc=$?
	_au=$(dev_attr "$B" authenticated)
	_st=$(coco_attr "$B" auth_status)
	coco_diag "$B without its root in .coco: write status $_rc, authenticated '$_au', auth_status '$_st'"
	[ "$_rc" -ne 0 ] && [ "$_au" = 0 ] &&
		# The reason names the chain's root: slot 0, depth 2 (root, intermediate, leaf).
		case "$_st" in
		"error: root certificate is not trusted (no matching key in the .coco keyring) (slot 0, depth 2, subject '"*"')") ;;
		*) return 1 ;;
		esac &&
		coco_log_since | grep -F "$B" | grep -qF 'coco: not authenticated: root certificate is not trusted'
}
coco_check "without its root in .coco, writing authenticated fails: authenticated 0, reason logged" \
	untrusted_after_unlink

trusted_after_add() {
	coco_trust_root || { coco_diag "keyctl padd failed"; return 1; }
	coco_write 15 "$COCO_PCI/$B/authenticated" 1 || { coco_run_diag "echo 1 > authenticated" "$?"; return 1; }
	[ "$(dev_attr "$B" authenticated)" = 1 ] && [ "$(coco_attr "$B" auth_status)" = ok ]
}
coco_check "root added back: writing authenticated succeeds, authenticated 1" trusted_after_add

refuses_false() {
	coco_write 5 "$COCO_PCI/$B/authenticated" 0 && { coco_diag "writing 0 succeeded"; return 1; }
	coco_write 5 "$COCO_PCI/$B/coco/preferred_slot" 8 && { coco_diag "slot 8 accepted"; return 1; }
	coco_write 5 "$COCO_PCI/$B/coco/preferred_slot" x && { coco_diag "slot x accepted"; return 1; }
	[ "$(coco_attr "$B" preferred_slot)" = auto ]
}
coco_check "authenticated refuses 0, preferred_slot refuses 8 and x (stays auto)" refuses_false

# --- the preferred slot --------------------------------------------------
# slot_auth BDF SLOT EXPECTED: prefer SLOT, re-authenticate, cert_slot must be
# EXPECTED.
slot_auth() {
	coco_write 5 "$COCO_PCI/$1/coco/preferred_slot" "$2" || { coco_run_diag "preferred_slot $2" "$?"; return 1; }
	coco_write 15 "$COCO_PCI/$1/authenticated" 1 || { coco_run_diag "authenticated" "$?"; return 1; }
	_cs=$(coco_attr "$1" cert_slot)
	[ "$_cs" = "$3" ] && [ "$(dev_attr "$1" authenticated)" = 1 ] && return 0
	coco_diag "$1: preferred_slot $2: cert_slot '$_cs' (wanted $3), authenticated '$(dev_attr "$1" authenticated)'"
	return 1
}
check_preferred() {
	[ -n "$MULTI" ] || { coco_diag "no function with several slots"; return 1; }
	_hi=$(ls "$COCO_PCI/$MULTI/certificates" | sed 's/slot//' | sort -n | tail -n 1)
	_lo=$(ls "$COCO_PCI/$MULTI/certificates" | sed 's/slot//' | sort -n | head -n 1)
	slot_auth "$MULTI" "$_hi" "$_hi" && slot_auth "$MULTI" auto "$_lo"
}
coco_check "preferred_slot selects the challenged slot (highest, then auto = lowest)" check_preferred

check_unpopulated() {
	[ -n "$MULTI" ] || return 1
	_lo=$(ls "$COCO_PCI/$MULTI/certificates" | sed 's/slot//' | sort -n | head -n 1)
	_un=7
	while [ -e "$COCO_PCI/$MULTI/certificates/slot$_un" ]; do _un=$((_un - 1)); done
	slot_auth "$MULTI" "$_un" "$_lo"
}
coco_check "an unpopulated preferred slot falls back to the lowest populated one" check_unpopulated

# --- concurrent readers and a re-authenticating writer ---------------------
# reader ID REF BAD: until $COCO_TMP/stop exists, read the device's files;
# record in BAD any value that is neither valid nor whole (slot0 must be
# empty, during a run, or exactly REF).
reader() {
	_r="$COCO_TMP/read.$1" _ref=$2 _bad=$3
	while [ ! -e "$COCO_TMP/stop" ]; do
		_a=$(cat "$COCO_PCI/$B/authenticated")
		case "$_a" in 0 | 1) ;; *) echo "authenticated '$_a'" >>"$_bad" ;; esac
		cat "$COCO_PCI/$B/certificates/slot0" >"$_r" 2>/dev/null
		if [ -s "$_r" ] && ! cmp -s "$_r" "$_ref"; then
			echo "certificates/slot0 differs from the reference" >>"$_bad"
		fi
		cat "$COCO_PCI/$B/coco/auth_status" "$COCO_PCI/$B/coco/cert_slot" \
			"$COCO_PCI/$B/coco/algorithms" >/dev/null || echo "read failed" >>"$_bad"
	done
}
check_concurrent() {
	cp "$COCO_PCI/$B/certificates/slot0" "$COCO_TMP/ref" || return 1
	: >"$COCO_TMP/bad"
	rm -f "$COCO_TMP/stop"
	(reader 1 "$COCO_TMP/ref" "$COCO_TMP/bad") &
	_p1=$!
	(reader 2 "$COCO_TMP/ref" "$COCO_TMP/bad") &
	_p2=$!
	_rc=0
	for _i in 1 2 3 4 5; do
		coco_write 15 "$COCO_PCI/$B/authenticated" 1 || { coco_run_diag "re-authentication $_i" "$?"; _rc=1; }
	done
	touch "$COCO_TMP/stop"
	wait "$_p1" "$_p2"
	if [ -s "$COCO_TMP/bad" ]; then
		sort "$COCO_TMP/bad" | uniq -c | coco_diag_stream 5
		_rc=1
	fi
	[ "$(dev_attr "$B" authenticated)" = 1 ] || _rc=1
	return "$_rc"
}
coco_check "two readers during five re-authentications see only whole, valid values" check_concurrent

check_log_clean() {
	_err=$(coco_log_since_raw | coco_log_errors)
	[ -z "$_err" ] && return 0
	printf '%s\n' "$_err" | coco_diag_stream 20
	return 1
}
coco_check "no error or splat in the kernel log during these checks" check_log_clean

ktap_finished
