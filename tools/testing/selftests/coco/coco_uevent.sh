#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# coco.ko sends a KOBJ_CHANGE uevent for a function whenever the outcome it
# shows changes (COCO_STATUS and COCO_AUTH in the event's environment), so
# that udev rules can react; a rescan with an unchanged outcome sends none.
# A change of the native IDE link sends one with COCO_IDE, a change of the
# TDI one with COCO_TDISP (on the tee-io platform: connect, key refresh and
# disconnect of the first function with IDE; bind, start and unbind of its
# TDI).
#
# Records uevents with the kernel's uevent helper (/proc/sys/kernel/hotplug,
# CONFIG_UEVENT_HELPER) and restores it afterwards.

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

HOTPLUG=/proc/sys/kernel/hotplug
ktap_print_header
if [ ! -w "$HOTPLUG" ]; then
	ktap_skip_all "no uevent helper ($HOTPLUG, CONFIG_UEVENT_HELPER)"
	exit "$KSFT_SKIP"
fi

coco_tmp_init
EVENTS=$COCO_TMP/uevents
HELPER=$COCO_TMP/uevent-helper
OLD_HELPER=$(cat "$HOTPLUG")
cat >"$HELPER" <<HELPER_EOF
#!/bin/sh
[ "\$ACTION" = change ] && [ -n "\$COCO_AUTH" ] && echo "\$DEVPATH \$COCO_STATUS \$COCO_AUTH" >>"$EVENTS"
[ "\$ACTION" = change ] && [ -n "\$COCO_IDE" ] && echo "\$DEVPATH \$COCO_IDE" >>"$EVENTS.ide"
[ "\$ACTION" = change ] && [ -n "\$COCO_TDISP" ] && echo "\$DEVPATH \$COCO_TDISP" >>"$EVENTS.tdisp"
exit 0
HELPER_EOF
chmod +x "$HELPER"
: >"$EVENTS"

cleanup() {
	echo "$OLD_HELPER" >"$HOTPLUG"
	coco_default_cleanup
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

ktap_set_plan 5

echo "$HELPER" >"$HOTPLUG"
coco_rmmod >/dev/null 2>&1
: >"$EVENTS"
coco_insmod >/dev/null 2>&1
DEVS=$(coco_devices)
coco_diag "tracked functions:" $DEVS

# events_for BDF WHAT: the recorded events of BDF whose status/auth are WHAT.
events_for() {
	grep -c "/$1 $2\$" "$EVENTS" 2>/dev/null
}

check_probe_events() {
	[ -n "$DEVS" ] || { coco_diag "no tracked function"; return 1; }
	coco_wait_ok 30 $DEVS || return 1
	_rc=0
	for _b in $DEVS; do
		coco_poll 10 sh -c "grep -q '/$_b ok ok\$' '$EVENTS'" || {
			coco_diag "$_b: no change uevent with COCO_STATUS=ok COCO_AUTH=ok"
			_rc=1
		}
	done
	[ "$_rc" = 0 ] || coco_diag_stream 20 <"$EVENTS"
	return "$_rc"
}
coco_check "a change uevent with COCO_STATUS=ok COCO_AUTH=ok for each function after insmod" \
	check_probe_events

check_no_event_without_change() {
	set -- $DEVS
	_b=$1
	_n=$(events_for "$_b" "ok ok")
	coco_rescan "$_b" || { coco_diag "rescan of $_b failed"; return 1; }
	sleep 2
	_m=$(events_for "$_b" "ok ok")
	[ "$_n" = "$_m" ] || { coco_diag "$_b: $_n events before the rescan, $_m after"; return 1; }
}
coco_check "a rescan that changes nothing sends no uevent" check_no_event_without_change

check_event_fields() {
	# Every recorded event names a tracked function and carries both fields.
	_bad=$(awk 'NF != 3' "$EVENTS")
	[ -z "$_bad" ] || { coco_diag "malformed event lines: $_bad"; return 1; }
	[ -s "$EVENTS" ]
}
coco_check "every change uevent carries COCO_STATUS and COCO_AUTH" check_event_fields

# The first tracked function whose coco/ide can connect (IDE on it and its root port).
ide_dev() {
	for _b in $DEVS; do
		coco_write 30 "$COCO_PCI/$_b/coco/ide" connect 2>/dev/null && { echo "$_b"; return 0; }
	done
	return 1
}

IDE_DEV=
check_ide_events() {
	: >"$EVENTS.ide"
	: >"$EVENTS.tdisp"
	_b=$(ide_dev) || { coco_diag "no function could connect"; return 1; }
	IDE_DEV=$_b
	coco_write 30 "$COCO_PCI/$_b/coco/ide" refresh || { coco_run_diag "refresh" "$?"; return 1; }
	if [ -e "$COCO_PCI/$_b/tdisp" ]; then
		[ -z "$(coco_driver "$_b")" ] || coco_write 30 /sys/bus/pci/drivers/nvme/unbind "$_b"
		for _v in bind start unbind; do
			coco_write 30 "$COCO_PCI/$_b/tdisp" "$_v" || { coco_run_diag "tdisp $_v" "$?"; return 1; }
		done
	fi
	coco_write 30 "$COCO_PCI/$_b/coco/ide" disconnect || { coco_run_diag "disconnect" "$?"; return 1; }
	coco_poll 10 sh -c "grep -q '/$_b disconnected\$' '$EVENTS.ide'"
	coco_diag_stream 10 <"$EVENTS.ide"
	# Exactly one connected, one refreshed, then one disconnected, for that function.
	[ "$(grep "/$_b " "$EVENTS.ide" | awk '{ print $2 }' | tr '\n' ' ')" = "connected refreshed disconnected " ]
}

check_tdisp_events() {
	[ -n "$IDE_DEV" ] && [ -e "$COCO_PCI/$IDE_DEV/tdisp" ] || { coco_diag "no TEE-IO function connected"; return 1; }
	coco_diag_stream 10 <"$EVENTS.tdisp"
	coco_poll 10 sh -c "[ -e '$COCO_PCI/$IDE_DEV/driver' ]"
	[ "$(grep "/$IDE_DEV " "$EVENTS.tdisp" | awk '{ print $2 }' | tr '\n' ' ')" = "locked run unlocked " ]
}
PLATFORM=${COCO_PLATFORM:-$(sed -n 's/^COCO_PLATFORM=//p' /coco/run.env 2>/dev/null)}
if [ "$PLATFORM" = tee-io ]; then
	coco_check "connecting, refreshing and disconnecting IDE send COCO_IDE=connected, refreshed, disconnected" \
		check_ide_events
	coco_check "binding, starting and unbinding the TDI send COCO_TDISP=locked, run, unlocked" \
		check_tdisp_events
else
	ktap_test_skip "connecting and disconnecting IDE send COCO_IDE uevents (not the tee-io platform)"
	ktap_test_skip "the TDI's changes send COCO_TDISP uevents (not the tee-io platform)"
fi

ktap_finished
