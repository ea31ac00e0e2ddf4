#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# SPDM authentication against misbehaving endpoints: for every endpoint the
# rig started with a variant (COCO_VARIANTS="<index>:<kind>:<value> ...",
# e.g. "0:fault:bad-signature 1:key:rsa3072"), the function still answers
# discovery and GET_VERSION (status ok), and its authentication ends as the
# variant demands: auth_status "ok" for the faults a requester must absorb
# (Busy, ResponseNotReady) and the other keys and versions, "error: <reason>"
# with the right reason for the others, with a "coco: authentication failed"
# line naming the device in the kernel log, and no certificate chain shown
# when the chain itself is bad.
#
# Run by the rig in its own boot: scripts/qemu-run.sh --test --endpoints 0
# --variant fault:bad-signature ... --tests coco_auth_faults.sh
# Endpoint i is behind root port i, so its function is 0000:<i+1>:00.0.

DIR=$(dirname "$0")
for _f in "$DIR/../kselftest/ktap_helpers.sh" "$DIR/coco_lib.sh"; do
	[ -r "$_f" ] || { printf 'TAP version 13\nBail out! missing %s\n' "$_f"; exit 1; }
done
# shellcheck source=/dev/null
. "$DIR/../kselftest/ktap_helpers.sh"
# shellcheck source=coco_lib.sh
. "$DIR/coco_lib.sh"

ktap_print_header
if [ -z "$COCO_VARIANTS" ]; then
	ktap_skip_all "COCO_VARIANTS is not set: no misbehaving endpoints"
	exit "$KSFT_SKIP"
fi
# Variants hold no blank and no glob character: split on purpose.
# shellcheck disable=SC2086
set -- $COCO_VARIANTS
ktap_set_plan $(($# * 2))

# expected VARIANT: "ok" or the reason auth_status must report after "error: ".
# A combined variant "handshake:clear+V" expects what V does.
expected() {
	case "$1" in
	handshake:*+* | measurements:*+*) expected "${1#*+}" ;;
	fault:busy:* | fault:not-ready | key:* | versions:* | slots:* | cma-id:* | \
		heartbeat:* | handshake:* | ide-keys:* | platform:* | \
		fault:kp-ack-fail | fault:go-refused | fault:wrong-stream-id | fault:ide-key-mismatch | \
		fault:refresh-kp-fail | fault:refresh-go-refused | fault:report-outside-bars | \
		fault:report-bad-length | fault:stuck-locked | fault:tdisp-error:* | fault:slow-idekm | \
		fault:bad-meas-signature | fault:malformed-block | fault:duplicate-index | \
		fault:oversized-record | fault:no-meas-sig | fault:refuse-all-blocks | \
		fault:bad-kex-signature | fault:wrong-verify-data | fault:tampered-mac | \
		fault:replayed-sequence | fault:skipped-sequence | fault:wrong-session-id | \
		fault:refuse-key-update | pki:no-keyusage | pki:long-chain | aead:* | dhe:* | \
		fault:bad-summary | measurements:*) echo ok ;;
	pki:pathlen-exceeded) echo "certificate exceeds a CA's pathLenConstraint" ;;
	pki:ca-no-keycertsign) echo "CA certificate's keyUsage lacks keyCertSign" ;;
	fault:untrusted-root)
		echo "root certificate is not trusted (no matching key in the .coco keyring)" ;;
	fault:wrong-version) echo "no common SPDM version" ;;
	fault:garbage) echo "not attempted: discovery or GET_VERSION failed" ;;
	fault:bad-signature | fault:wrong-nonce)
		echo "CHALLENGE_AUTH signature does not verify with the leaf key" ;;
	fault:truncated) echo "SPDM message shorter than" ;;
	fault:oversized) echo "unexpected bytes after the SPDM message" ;;
	fault:digest-mismatch) echo "certificate chain does not match its DIGESTS digest" ;;
	fault:expired-leaf) echo "device certificate is not valid now" ;;
	fault:broken-chain) echo "certificate signature does not verify with its issuer's key" ;;
	fault:unsupported-algorithm) echo "SPDM response selects an algorithm not offered" ;;
	fault:wrong-header-version) echo "unexpected SPDM version in header" ;;
	*) echo "?" ;;
	esac
}

# expected_meas VARIANT: what measurements/status must say: "ok" or the
# reason after "error: " (the authentication itself succeeds).
expected_meas() {
	case "$1" in
	handshake:*+*) expected_meas "${1#*+}" ;;
	fault:bad-meas-signature) echo "MEASUREMENTS signature does not verify with the leaf key" ;;
	fault:malformed-block) echo "measurement block size inconsistent with its value" ;;
	fault:duplicate-index) echo "duplicate measurement block index" ;;
	fault:oversized-record) echo "measurement record length exceeds the message" ;;
	fault:no-meas-sig) echo "device cannot sign its measurements (MEAS_CAP 1)" ;;
	fault:bad-summary)
		echo "measurement summary hash of CHALLENGE_AUTH does not match the measurements read" ;;
	pki:pathlen-exceeded | pki:ca-no-keycertsign | fault:untrusted-root | fault:wrong-version | fault:garbage | fault:bad-signature | \
		fault:wrong-nonce | fault:truncated | fault:oversized | fault:digest-mismatch | \
		fault:expired-leaf | fault:broken-chain | fault:unsupported-algorithm | \
		fault:wrong-header-version)
		echo "not read: the device is not authenticated" ;;
	*) echo ok ;;
	esac
}

auth_settled() {
	_a=$(coco_attr "$1" auth_status)
	[ -n "$_a" ] && [ "$_a" != pending ]
}

# check_outcome BDF VARIANT
check_outcome() {
	_want=$(expected "$2")
	[ "$_want" != "?" ] || { coco_diag "no expectation for variant $2"; return 1; }
	coco_poll 30 auth_settled "$1" || { coco_diag "$1: auth_status still '$(coco_attr "$1" auth_status)' after 30 s"; return 1; }
	_st=$(coco_attr "$1" status)
	_auth=$(coco_attr "$1" auth_status)
	coco_diag "$1 ($2): status '$_st', auth_status '$_auth'"
	case "$2" in
	fault:garbage)
		# GET_VERSION gets random bytes back: the probe itself fails.
		case "$_st" in "error: "*) ;; *) coco_diag "status should be an error"; return 1 ;; esac ;;
	*) [ "$_st" = ok ] || { coco_diag "discovery/GET_VERSION should still succeed"; return 1; } ;;
	esac
	_au=$(cat "$COCO_PCI/$1/authenticated" 2>/dev/null)
	if [ "$_want" = ok ]; then
		[ "$_au" = 1 ] || { coco_diag "authenticated '$_au', wanted 1"; return 1; }
		case "$2" in
		cma-id:*)
			# Another identity: reported, not fatal (strict_identity=0).
			_cis=$(coco_attr "$1" cma_identity_status)
			coco_diag "cma_identity '$(coco_attr "$1" cma_identity)': $_cis"
			case "$_cis" in "mismatch: "*) ;; *) return 1 ;; esac ;;
		esac
		[ "$_auth" = ok ] || return 1
		check_meas "$1" "$2" && check_session "$1" "$2"
		return
	fi
	[ "$_au" = 0 ] || { coco_diag "authenticated '$_au', wanted 0"; return 1; }
	# A chain failure names the slot, the certificate's depth (0: the leaf) and subject;
	# a chain that failed validation is not shown.
	_culprit=
	case "$2" in
	pki:pathlen-exceeded) _culprit=" (slot 0, depth 1, subject '" ;;
	pki:ca-no-keycertsign) _culprit=" (slot 0, depth 1, subject '" ;;
	fault:expired-leaf) _culprit=" (slot 0, depth 0, subject '" ;;
	fault:untrusted-root) _culprit=" (slot 0, depth 2, subject '" ;;
	esac
	if [ -n "$_culprit" ]; then
		case "$_auth" in
		"error: $_want"*"$_culprit"*) ;;
		*) coco_diag "reason does not name '$_culprit...'"; return 1 ;;
		esac
		case "$2" in
		pki:* | fault:expired-leaf)
			_cc=$(wc -c <"$COCO_PCI/$1/coco/certificate_chain")
			[ "$_cc" = 0 ] || { coco_diag "certificate_chain shows $_cc bytes of an invalid chain"; return 1; } ;;
		esac
	fi
	case "$_auth" in
	"error: $_want"*) check_meas "$1" "$2"; return ;;
	esac
	coco_diag "wanted 'error: $_want...'"
	return 1
}

# expected_session VARIANT: what coco/session must say after the variant's
# authentication: "established", "none" (no session: SPDM 1.0/1.1, or not
# authenticated), or the reason after "error: ".
expected_session() {
	case "$1" in
	# In the clear, ResponderVerifyData travels in FINISH_RSP.
	handshake:clear+fault:wrong-verify-data) echo "FINISH_RSP ResponderVerifyData does not verify" ;;
	handshake:*+*) expected_session "${1#*+}" ;;
	fault:bad-kex-signature) echo "KEY_EXCHANGE_RSP signature does not verify with the leaf key" ;;
	fault:wrong-verify-data) echo "ResponderVerifyData does not verify" ;;
	fault:tampered-mac | fault:replayed-sequence | fault:skipped-sequence)
		echo "secured message MAC does not verify" ;;
	fault:wrong-session-id) echo "secured message for another session" ;;
	fault:refuse-key-update) echo "device refused KEY_UPDATE (SPDM ERROR)" ;;
	# Sessions exist from SPDM 1.1.
	versions:*1.1*) echo established ;;
	versions:*) echo none ;;
	dhe:secp521r1) echo "unavailable: no common session algorithm" ;;
	*) [ "$(expected "$1")" = ok ] && echo established || echo none ;;
	esac
}

# check_session BDF VARIANT
check_session() {
	_sw=$(expected_session "$2")
	_ss=$(coco_attr "$1" session)
	coco_diag "$1 ($2): session '$_ss'"
	case "$_sw" in
	established)
		[ "$_ss" = established ] || return 1
		# The handshake as the endpoint announced it.
		_hw=encrypted
		case "$2" in handshake:clear*) _hw=clear ;; esac
		_hs=$(coco_attr "$1" session_handshake)
		[ "$_hs" = "$_hw" ] || { coco_diag "$1: session_handshake '$_hs', wanted '$_hw'"; return 1; }
		# The algorithms and version the variant leaves.
		_sa=$(coco_attr "$1" session_algorithms)
		case "$2" in
		aead:aes128-gcm) [ "${_sa#* }" = aes-128-gcm ] || { coco_diag "$1: session_algorithms '$_sa'"; return 1; } ;;
		versions:*1.1)
			_sv=$(coco_attr "$1" spdm_version)
			[ "$_sv" = 1.1 ] || { coco_diag "$1: spdm_version '$_sv', wanted 1.1"; return 1; } ;;
		esac ;;
	none) [ "$_ss" = none ] ;;
	unavailable:*) case "$_ss" in "$_sw"*) return 0 ;; esac; return 1 ;;
	*) case "$_ss" in "error: $_sw"*) return 0 ;; esac; return 1 ;;
	esac
}

# check_meas BDF VARIANT: measurements/status as the variant demands; a
# failed first reading leaves no block files (nothing stale to show).
check_meas() {
	_mw=$(expected_meas "$2")
	_ms=$(cat "$COCO_PCI/$1/measurements/status" 2>/dev/null)
	_nb=$(ls "$COCO_PCI/$1"/measurements/[0-9]*_value 2>/dev/null | wc -l)
	coco_diag "$1 ($2): measurements/status '$_ms', $_nb blocks"
	if [ "$_mw" = ok ]; then
		[ "$_ms" = ok ] && [ "$_nb" -ge 1 ] || return 1
		case "$2" in
		*fault:refuse-all-blocks)
			dmesg | grep -F "$1" | grep 'coco: measurements: ' | tail -n 1 | grep -q 'per index' ||
				{ coco_diag "no per-index reading in the log"; return 1; } ;;
		esac
		case "$2" in
		measurements:sparse*)
			# The blocks at the indices the device has, none asked for in vain.
			_ix=$(cd "$COCO_PCI/$1/measurements" && ls [0-9]*_value | sed 's/_value$//' | sort -n | tr '\n' ' ')
			[ "$_ix" = "1 2 253 254 " ] || { coco_diag "blocks (<index>_value files) '$_ix', wanted '1 2 253 254 '"; return 1; } ;;
		esac
		return 0
	fi
	[ "$_ms" = "error: $_mw" ] && [ "$_nb" = 0 ] && [ "$(cat "$COCO_PCI/$1/measurements/stale")" = 0 ]
}

# log_after_trust: the kernel log from the first time coco-trust-sync put the
# rig's trust anchor in place (before it authenticated the devices again) on;
# the whole log if it never did.
log_after_trust() {
	if dmesg | grep -q 'coco-trust-sync: .*authenticating every device again'; then
		dmesg | awk '/coco-trust-sync: .*authenticating every device again/ { f = 1 } f { print }'
	else
		dmesg
	fi
}

# check_log BDF VARIANT: failures are logged with the device's name and the
# reason (an untrusted root as "not authenticated", a failed GET_VERSION as
# "probe failed", a CMA identity mismatch as a warning); successes log no
# failure.
check_log() {
	_want=$(expected "$2")
	case "$2" in
	fault:garbage) _want="coco: probe failed" ;;
	fault:bad-meas-signature | fault:malformed-block | fault:duplicate-index | \
		fault:oversized-record | fault:no-meas-sig | fault:bad-summary)
		log_after_trust | grep -F "$1" | grep -qF "coco: measurements failed: $(expected_meas "$2")" || {
			coco_diag "no 'coco: measurements failed: $(expected_meas "$2")' line for $1"; return 1; } ;;
	dhe:secp521r1)
		log_after_trust | grep -F "$1" | grep -qF "coco: session unavailable: no common session algorithm" || {
			coco_diag "no 'coco: session unavailable' line for $1"; return 1; } ;;
	cma-id:*)
		dmesg | grep -F "$1" | grep -q "coco: CMA identity names another" || {
			coco_diag "no CMA identity warning for $1"; return 1; } ;;
	esac
	# From the trust anchor's loading on: before it, every device is untrusted.
	_lines=$(log_after_trust | grep -F "$1" | grep -E "coco: (authentication failed|not authenticated|probe failed)")
	if [ "$_want" = ok ]; then
		# An untrusted first run follows every insmod until the trust anchor
		# is loaded again ("not authenticated"): only failures count here.
		_lines=$(printf '%s\n' "$_lines" | grep -E "coco: (authentication failed|probe failed)")
		[ -z "$_lines" ] && return 0
		printf '%s\n' "$_lines" | coco_diag_stream 5
		return 1
	fi
	printf '%s\n' "$_lines" | grep -qF "$_want" && return 0
	coco_diag "no 'coco: authentication failed: $_want' line for $1"
	printf '%s\n' "$_lines" | coco_diag_stream 5
	return 1
}

for _v in "$@"; do
	_i=${_v%%:*}
	_variant=${_v#*:}
	_bdf=$(printf '0000:%02x:00.0' $((_i + 1)))
	coco_check "endpoint $_i $_variant: auth_status as expected" check_outcome "$_bdf" "$_variant"
	coco_check "endpoint $_i $_variant: kernel log matches" check_log "$_bdf" "$_variant"
done

ktap_finished
