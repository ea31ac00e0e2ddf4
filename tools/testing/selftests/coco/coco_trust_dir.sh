#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Trust anchors that survive module reloads, installed as `make install` does:
# certificate files in /etc/coco/trust, loaded into the .coco keyring by
# coco-trust-sync, which the udev rule 90-coco-trust.rules runs when coco.ko
# loads (here through udev-run, which runs what the installed rule would run:
# the guest has no udev). After rmmod + insmod the devices authenticate again;
# with the root's file removed they do not ("root certificate is not
# trusted"); with it back (DER or PEM) they do; the loader run by hand
# withdraws the key of a removed file. Leaves the root in place, coco loaded
# and every device authenticated.
#
# Environment: COCO_ENDPOINTS; COCO_ROOT_DER (the rig's root, default
# /coco/root.der); COCO_TRUST_DIR (default /etc/coco/trust).

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
TRUST_DIR=${COCO_TRUST_DIR:-/etc/coco/trust}
NAME=coco-rig-root
ANCHOR=$TRUST_DIR/$NAME.der
UNTRUSTED="root certificate is not trusted"

# root_key: serial of the key named $NAME in .coco (/proc/keys cuts the type
# to 9 characters), empty if there is none.
root_key() {
	_rk=$(awk -v d="$NAME:" '$8 ~ /^asymmetri/ && $9 == d { print $1; exit }' /proc/keys)
	[ -n "$_rk" ] && echo "$((0x$_rk))"
}

# udev_add: what udev runs when coco.ko loads (the loader, via the rule).
udev_add() {
	coco_run 180 udev-run add module coco
	_ua=$?
	[ "$_ua" -eq 0 ] || coco_run_diag "udev-run add module coco" "$_ua"
	return "$_ua"
}

# sync_by_hand: the loader as an administrator runs it after changing the directory.
sync_by_hand() {
	coco_run 180 coco-trust-sync
	_sh=$?
	[ "$_sh" -eq 0 ] || coco_run_diag "coco-trust-sync" "$_sh"
	return "$_sh"
}

# reload: rmmod coco, insmod coco.ko, then the udev rule's program.
reload() {
	coco_rmmod || { coco_run_diag "rmmod coco" "$?"; return 1; }
	coco_run 60 insmod "$COCO_KO" || { coco_run_diag "insmod" "$?"; return 1; }
	coco_poll 20 coco_count_is "$COUNT" || coco_diag "$(coco_count) coco directories after insmod, wanted $COUNT"
	udev_add
}

all_authenticated() {
	[ "$COUNT" -ge 1 ] || return 1
	for _b in $DEVS; do
		[ "$(cat "$COCO_PCI/$_b/authenticated" 2>/dev/null)" = 1 ] || return 1
	done
}
show() {
	for _b in $DEVS; do
		coco_diag "$_b: authenticated '$(cat "$COCO_PCI/$_b/authenticated" 2>/dev/null)', auth_status '$(coco_attr "$_b" auth_status)'"
	done
	coco_diag "key $NAME in .coco: '$(root_key)'; $TRUST_DIR: $(ls "$TRUST_DIR" 2>/dev/null | tr '\n' ' ')"
}
check_trusted() {
	coco_poll 30 all_authenticated && [ -n "$(root_key)" ] && return 0
	show
	return 1
}
# check_untrusted: no key, every function unauthenticated for the untrusted root.
check_untrusted() {
	_ok=0
	[ -z "$(root_key)" ] || { coco_diag "key $NAME is still in .coco"; _ok=1; }
	for _b in $DEVS; do
		[ "$(cat "$COCO_PCI/$_b/authenticated" 2>/dev/null)" = 0 ] || _ok=1
		case "$(coco_attr "$_b" auth_status)" in *"$UNTRUSTED"*) ;; *) _ok=1 ;; esac
	done
	[ "$COUNT" -ge 1 ] && [ "$_ok" = 0 ] && return 0
	show
	return 1
}

cleanup() {
	# Leave the root in place, coco loaded with it, and every device authenticated.
	rm -f "$TRUST_DIR/$NAME.pem"
	[ -f "$ANCHOR" ] || cp "$COCO_ROOT_DER" "$ANCHOR" 2>/dev/null
	if ! coco_loaded; then
		coco_run 60 insmod "$COCO_KO" && udev_add
	elif [ -z "$(root_key)" ] || ! all_authenticated; then
		sync_by_hand
	fi
	for _b in $DEVS; do
		[ "$(cat "$COCO_PCI/$_b/authenticated" 2>/dev/null)" = 1 ] ||
			coco_write 15 "$COCO_PCI/$_b/authenticated" 1
	done
	coco_default_cleanup
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

ktap_print_header
for _t in keyctl openssl coco-trust-sync udev-run; do
	command -v "$_t" >/dev/null || _missing="$_missing $_t"
done
if [ -n "$_missing" ] || [ ! -r "$COCO_ROOT_DER" ] || [ ! -d "$TRUST_DIR" ]; then
	ktap_skip_all "needs keyctl, openssl, coco-trust-sync, udev-run (missing:${_missing:- none}), $COCO_ROOT_DER and $TRUST_DIR"
	exit "$KSFT_SKIP"
fi
ktap_set_plan 8
coco_tmp_init
DEVS=$(coco_devices)
COUNT=$(coco_count)
coco_diag "tracked functions ($COUNT):" $DEVS
coco_log_mark trust_dir

installed() {
	coco_expected_count || return 1
	cmp -s "$ANCHOR" "$COCO_ROOT_DER" || { coco_diag "$ANCHOR is not the rig's root"; return 1; }
	check_trusted
}
coco_check "the rig's root is in $TRUST_DIR, loaded into .coco as $NAME, every function authenticated" installed

reload_trusted() {
	reload || return 1
	check_trusted
}
coco_check "rmmod, insmod and the udev rule's loader: every function authenticated again" reload_trusted

reload_removed() {
	mv "$ANCHOR" "$COCO_TMP/$NAME.der" || return 1
	reload || return 1
	check_untrusted
}
coco_check "root's file removed, module reloaded: every function unauthenticated, root not trusted" reload_removed

restored_by_hand() {
	mv "$COCO_TMP/$NAME.der" "$ANCHOR" || return 1
	sync_by_hand || return 1
	check_trusted
}
coco_check "root's file back, loader run by hand: every function authenticated again" restored_by_hand

withdrawn_by_hand() {
	mv "$ANCHOR" "$COCO_TMP/$NAME.der" || return 1
	sync_by_hand || return 1
	check_untrusted
}
coco_check "root's file removed, loader run by hand: key withdrawn, every function unauthenticated" withdrawn_by_hand

reload_pem() {
	openssl x509 -inform DER -in "$COCO_TMP/$NAME.der" -out "$TRUST_DIR/$NAME.pem" 2>/dev/null ||
		{ coco_diag "openssl cannot convert the root to PEM"; return 1; }
	reload || return 1
	check_trusted
}
coco_check "root back as a PEM file, module reloaded: every function authenticated" reload_pem

reload_der() {
	rm -f "$TRUST_DIR/$NAME.pem"
	mv "$COCO_TMP/$NAME.der" "$ANCHOR" || return 1
	reload || return 1
	check_trusted
}
coco_check "root back as DER, module reloaded: every function authenticated" reload_der

check_log_clean() {
	_err=$(coco_log_since_raw | coco_log_errors)
	[ -z "$_err" ] && return 0
	printf '%s\n' "$_err" | coco_diag_stream 20
	return 1
}
coco_check "no error or splat in the kernel log during these checks" check_log_clean

ktap_finished
