#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# coco.ko's ide_policy module parameter: what a failed native IDE connect
# does to the function.
#  - ide_policy=1 (block): the NVMe driver is unbound and may not bind again
#    (driver_override "coco-ide-blocked": a bind is refused) until the
#    function is connected; a successful connect lifts the block and the
#    driver binds again;
#  - ide_policy=0 (warn, the default): a failed connect leaves the driver
#    bound.
# The failure is a connect without a secure session (ended through
# coco/session "end"). ide_policy=2 (panic) is not exercised: it would end the
# run.
#
# Needs the rig's tee-io platform (scripts/qemu-run.sh --platform tee-io);
# skips otherwise.

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

ktap_print_header
EP=$(ep_bdf 0)
D=$COCO_PCI/$EP
need_ide_endpoint "$EP"
if [ "$(coco_driver "$EP")" != nvme ]; then
	ktap_skip_all "$EP has no NVMe driver bound"
	exit "$KSFT_SKIP"
fi

ktap_set_plan 3

# reload POLICY: coco.ko loaded again with ide_policy=POLICY.
POLICY_NOW=0
reload() {
	POLICY_NOW=$1
	coco_rmmod || { coco_diag "rmmod failed"; return 1; }
	coco_insmod "ide_policy=$1" || { coco_diag "insmod ide_policy=$1 failed"; return 1; }
	coco_wait_ok 60 "$EP"
}

# fail_connect: a connect that fails (no session).
fail_connect() {
	coco_write 15 "$D/coco/session" end || { coco_run_diag "session end" "$?"; return 1; }
	! coco_write 30 "$D/coco/ide" connect || { coco_diag "connect accepted without a session"; return 1; }
	coco_diag "$EP: ide '$(coco_attr "$EP" ide)'"
}

blocked() {
	reload 1 || return 1
	fail_connect || return 1
	_o=$(cat "$D/driver_override" 2>/dev/null)
	coco_diag "$EP: driver '$(coco_driver "$EP")', driver_override '$_o'"
	[ -z "$(coco_driver "$EP")" ] && [ "$_o" = coco-ide-blocked ] || return 1
	if coco_write 15 /sys/bus/pci/drivers/nvme/bind "$EP"; then
		coco_diag "binding nvme was accepted"
		return 1
	fi
	[ -z "$(coco_driver "$EP")" ]
}
coco_check "ide_policy=block: a failed connect unbinds the NVMe driver and a bind is refused" blocked

lifted() {
	coco_write 30 "$D/coco/rescan" 1 || { coco_run_diag "rescan" "$?"; return 1; }
	coco_write 30 "$D/coco/ide" connect || { coco_run_diag "connect" "$?"; return 1; }
	coco_poll 20 sh -c "[ -e '$D/driver' ]"
	coco_diag "$EP: ide '$(coco_attr "$EP" ide)', driver '$(coco_driver "$EP")', driver_override '$(cat "$D/driver_override")'"
	_lf_rc=0
	# A cleared driver_override reads "(null)".
	case "$(cat "$D/driver_override")" in '' | '(null)') ;; *) _lf_rc=1 ;; esac
	[ "$(coco_driver "$EP")" = nvme ] || _lf_rc=1
	coco_write 30 "$D/coco/ide" disconnect || _lf_rc=1
	return "$_lf_rc"
}
coco_check "a successful connect lifts the block: the NVMe driver binds again" lifted

warned() {
	reload 0 || return 1
	fail_connect || return 1
	coco_diag "$EP: driver '$(coco_driver "$EP")', driver_override '$(cat "$D/driver_override")'"
	_wd_rc=0
	[ "$(coco_driver "$EP")" = nvme ] || _wd_rc=1
	coco_write 30 "$D/coco/rescan" 1 || _wd_rc=1
	return "$_wd_rc"
}
coco_check "ide_policy=warn (default): a failed connect leaves the NVMe driver bound" warned

# Whatever happened above: the default module, the driver bound.
[ "$POLICY_NOW" = 0 ] || reload 0 >/dev/null
if [ "$(coco_driver "$EP")" != nvme ]; then
	echo "" >"$D/driver_override" 2>/dev/null
	echo "$EP" >/sys/bus/pci/drivers/nvme/bind 2>/dev/null
fi
coco_ensure_loaded
ktap_finished
