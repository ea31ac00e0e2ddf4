#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The coco sysfs ABI on every tracked function: status, spdm_versions,
# doe_features, rescan (accepted and rejected writes), file modes.
#
# Environment: COCO_ENDPOINTS (number of emulated endpoints),
# COCO_EXPECTED_VERSIONS (the endpoint's SPDM versions, formatted like
# spdm_versions, e.g. "1.0 1.1 1.2 1.3").

# Lists of BDFs ("0000:01:00.0 0000:02:00.0") are split on purpose: a BDF
# has no blank and no glob character.
# shellcheck disable=SC2086,SC2046,SC2116

DIR=$(dirname "$0")
for _f in "$DIR/../kselftest/ktap_helpers.sh" "$DIR/coco_lib.sh"; do
	[ -r "$_f" ] || { printf 'TAP version 13\nBail out! missing %s\n' "$_f"; exit 1; }
done
# shellcheck source=/dev/null
. "$DIR/../kselftest/ktap_helpers.sh"
# shellcheck source=coco_lib.sh
. "$DIR/coco_lib.sh"

N=${COCO_ENDPOINTS:-}
VERSIONS_RE='^[0-9]+\.[0-9]+( [0-9]+\.[0-9]+)*$'
FEATURES_RE='^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}( [0-9a-fA-F]{4}:[0-9a-fA-F]{2})*$'

cleanup() {
	[ -n "$COCO_TMP" ] && rm -rf "$COCO_TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

ktap_print_header
ktap_set_plan 16

DEVS=$(coco_devices)
COUNT=$(coco_count)
coco_diag "tracked functions ($COUNT):" $DEVS

coco_check "the expected number of functions is tracked" coco_expected_count

check_status_ok() {
	[ "$COUNT" -ge 1 ] && coco_wait_ok 20 $DEVS
}
coco_check "status becomes ok within 20 s on every tracked function" \
	check_status_ok

# one_line FILE REGEX: FILE is exactly one newline-terminated line matching REGEX.
one_line() {
	_ol_lines=$(wc -l <"$1" 2>/dev/null)
	[ "${_ol_lines:-0}" -eq 1 ] && grep -Eq "$2" "$1"
}

check_versions_format() {
	one_line "$COCO_PCI/$1/coco/spdm_versions" "$VERSIONS_RE" && return 0
	coco_diag "$1: spdm_versions '$(coco_attr "$1" spdm_versions)' is not one line of major.minor versions"
	return 1
}
coco_check "spdm_versions is one newline-terminated line of major.minor versions" \
	coco_for_all check_versions_format

check_versions_value() {
	_vv=$(coco_attr "$1" spdm_versions)
	[ "$_vv" = "$COCO_EXPECTED_VERSIONS" ] && return 0
	coco_diag "$1: spdm_versions '$_vv', expected '$COCO_EXPECTED_VERSIONS'"
	return 1
}
if [ -n "${COCO_EXPECTED_VERSIONS:-}" ]; then
	coco_check "spdm_versions equals COCO_EXPECTED_VERSIONS" \
		coco_for_all check_versions_value
else
	coco_diag "COCO_EXPECTED_VERSIONS is not set"
	ktap_test_skip "spdm_versions equals COCO_EXPECTED_VERSIONS"
fi

check_features_format() {
	one_line "$COCO_PCI/$1/coco/doe_features" "$FEATURES_RE" && return 0
	coco_diag "$1: doe_features '$(coco_attr "$1" doe_features)' is not one line of vvvv:tt entries"
	return 1
}
coco_check "doe_features is one newline-terminated line of vvvv:tt entries" \
	coco_for_all check_features_format

# has_feature BDF FEATURE
has_feature() {
	case " $(coco_attr "$1" doe_features) " in
	*" $2 "*) return 0 ;;
	esac
	coco_diag "$1: doe_features '$(coco_attr "$1" doe_features)' lacks $2"
	return 1
}
check_discovery() { has_feature "$1" 0001:00; }
check_cma() { has_feature "$1" 0001:01; }
coco_check "doe_features lists DOE discovery (0001:00)" coco_for_all check_discovery
coco_check "doe_features lists CMA/SPDM (0001:01)" coco_for_all check_cma

# Snapshot before the rescans.
snapshot() {
	for _sn_b in $DEVS; do
		printf '%s|%s|%s\n' "$_sn_b" "$(coco_attr "$_sn_b" spdm_versions)" \
			"$(coco_attr "$_sn_b" doe_features)"
	done
}
BEFORE=$(snapshot)

check_rescan_ok() {
	coco_rescan "$1"
	_rc=$?
	[ "$_rc" -eq 0 ] && return 0
	coco_run_diag "$1: echo 1 > coco/rescan" "$_rc"
	return 1
}
coco_check "rescan: writing 1 succeeds" coco_for_all check_rescan_ok

check_after_rescan() {
	_ok=0
	coco_all_ok $DEVS || { coco_diag "status not ok right after a successful rescan"; _ok=1; }
	_after=$(snapshot)
	if [ "$_after" != "$BEFORE" ]; then
		coco_diag "before rescan:"
		printf '%s\n' "$BEFORE" | coco_diag_stream
		coco_diag "after rescan:"
		printf '%s\n' "$_after" | coco_diag_stream
		_ok=1
	fi
	[ "$COUNT" -ge 1 ] && return "$_ok"
	return 1
}
coco_check "rescan: status ok, spdm_versions and doe_features unchanged afterwards" \
	check_after_rescan

# reject BDF VALUE: writing VALUE to rescan must fail.
reject() {
	coco_write 15 "$COCO_PCI/$1/coco/rescan" "$2"
	_rc=$?
	if [ "$_rc" -eq 0 ]; then
		coco_diag "$1: writing '$2' to coco/rescan succeeded"
		return 1
	fi
	coco_timed_out "$_rc" && { coco_run_diag "$1: echo $2 > coco/rescan (timed out)" "$_rc"; return 1; }
	return 0
}
check_reject_zero() { reject "$1" 0; }
check_reject_garbage() { reject "$1" garbage; }
coco_check "rescan: writing 0 fails" coco_for_all check_reject_zero
coco_check "rescan: writing garbage fails" coco_for_all check_reject_garbage

check_after_reject() {
	_ok=0
	coco_all_ok $DEVS || { coco_diag "status changed by a rejected write"; _ok=1; }
	_after=$(snapshot)
	if [ "$_after" != "$BEFORE" ]; then
		printf '%s\n' "$_after" | coco_diag_stream
		_ok=1
	fi
	[ "$COUNT" -ge 1 ] && return "$_ok"
	return 1
}
coco_check "rescan: rejected writes leave status and versions alone" check_after_reject

# mode_is BDF FILE MODE
mode_is() {
	_m=$(stat -c %a "$COCO_PCI/$1/coco/$2" 2>/dev/null)
	[ "$_m" = "$3" ] && return 0
	coco_diag "$1: coco/$2 has mode '$_m', wanted $3"
	return 1
}
check_rescan_mode() { mode_is "$1" rescan 200; }
check_ro_modes() {
	_ok=0
	for _f in spdm_versions doe_features status; do
		mode_is "$1" "$_f" 444 || _ok=1
	done
	return "$_ok"
}
coco_check "rescan has mode 200 (only root may write, nobody reads)" \
	coco_for_all check_rescan_mode
coco_check "spdm_versions, doe_features and status have mode 444" \
	coco_for_all check_ro_modes

check_rescan_unreadable() {
	if cat "$COCO_PCI/$1/coco/rescan" >/dev/null 2>&1; then
		coco_diag "$1: reading coco/rescan succeeded"
		return 1
	fi
	return 0
}
coco_check "reading rescan fails" coco_for_all check_rescan_unreadable

check_log() {
	_err=$(dmesg | grep 'coco: probe failed')
	[ -z "$_err" ] && return 0
	printf '%s\n' "$_err" | coco_diag_stream 20
	return 1
}
coco_check "kernel log has no coco: probe failed line" check_log

ktap_finished
