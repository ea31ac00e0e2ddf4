# SPDX-License-Identifier: GPL-2.0
#
# Shared helpers for the coco kselftests. Sourced by every coco_*.sh after
# ../kselftest/ktap_helpers.sh. POSIX sh only: the guest runs busybox ash.
#
# Rules every test follows:
#  - every wait is a bounded poll (coco_poll, deadline from /proc/uptime);
#  - every write that talks to the device runs through coco_run/coco_write,
#    which wraps it in `timeout` AND never waits longer than the timeout plus
#    5 s even if the writer is stuck in an uninterruptible kernel wait;
#  - diagnostics go through coco_diag (printf, no globbing), because
#    ktap_print_msg echoes its arguments unquoted;
#  - KTAP descriptions contain no '#' and no glob characters, because
#    ktap_helpers.sh echoes them unquoted too.
#
# Names: helpers are coco_*, their scratch variables _<prefix>_*; nothing
# here uses the names ktap_helpers.sh keeps in globals (result, description,
# directive, KTAP_*, KSFT_*).

COCO_KO=${COCO_KO:-/lib/modules/coco.ko}
COCO_PCI=/sys/bus/pci/devices
COCO_NVME_CLASS=0x010802
# shellcheck disable=SC2034 # used by the tests
COCO_DEBUGFS=/sys/kernel/debug
COCO_TMP=
COCO_RUN_N=0
COCO_RUN_OUT=
COCO_MARK=
COCO_MARK_LINES=

# ---------------------------------------------------------------- output

# coco_diag LINE...: KTAP diagnostic lines, one per argument (an argument
# with newlines gives one diagnostic line per line).
coco_diag() {
	for _cd_l in "$@"; do
		printf '%s\n' "$_cd_l" | sed 's/^/# /'
	done
}

# coco_diag_stream [MAX]: stdin as KTAP diagnostic lines, at most MAX (200).
coco_diag_stream() {
	awk -v max="${1:-200}" '
		NR <= max { print "# " $0 }
		END { if (NR > max) print "# ... (" NR - max " more lines)" }'
}

# coco_check DESCRIPTION CMD [ARGS...]: one KTAP result line, ok iff CMD succeeds.
coco_check() {
	_cc_desc=$1
	shift
	if "$@"; then
		ktap_test_pass "$_cc_desc"
	else
		ktap_test_fail "$_cc_desc"
	fi
}

# coco_host REQUEST [ARGS...]: ask the host harness to act (no acknowledgement).
coco_host() {
	echo "@@coco-host $*"
}

# ---------------------------------------------------------------- time

# coco_now: whole seconds since boot.
coco_now() {
	_cn_up=
	read -r _cn_up _cn_rest 2>/dev/null </proc/uptime
	_cn_up=${_cn_up%%.*}
	case "$_cn_up" in
	'' | *[!0-9]*) _cn_up=$(date +%s) ;;
	esac
	echo "$_cn_up"
}

# coco_tick: one poll interval (0.2 s; 1 s if sleep has no fractions).
coco_tick() {
	sleep 0.2 2>/dev/null || sleep 1
}

# coco_poll SECS CMD [ARGS...]: retry CMD until it succeeds (return 0) or
# SECS seconds have passed (return 1). CMD must not call coco_poll itself.
coco_poll() {
	_cp_deadline=$(($(coco_now) + $1))
	shift
	while :; do
		"$@" && return 0
		[ "$(coco_now)" -ge "$_cp_deadline" ] && return 1
		coco_tick
	done
}

# ---------------------------------------------------------------- commands

coco_tmp_init() {
	[ -n "$COCO_TMP" ] && return 0
	for _ct_base in "${TMPDIR:-/tmp}" /tmp /dev/shm /run; do
		mkdir -p "$_ct_base" 2>/dev/null
		COCO_TMP=$(mktemp -d "$_ct_base/coco-selftest.XXXXXX" 2>/dev/null) && return 0
	done
	COCO_TMP=
	coco_diag "no writable temporary directory: commands run without the outer guard"
	return 0
}

# coco_run SECS CMD [ARGS...]: run `timeout SECS CMD ARGS` (an external
# command, not a shell function) and return its exit status, or 124 if it has
# not finished SECS+5 s later (it is then abandoned: a task blocked in the
# kernel may ignore every signal, and the test must not hang on it).
# Its stdout+stderr end up in COCO_RUN_OUT.
coco_run() {
	_cr_secs=$1
	shift
	COCO_RUN_OUT=
	coco_tmp_init
	if [ -z "$COCO_TMP" ]; then
		COCO_RUN_OUT=$(timeout "$_cr_secs" "$@" 2>&1 </dev/null)
		return $?
	fi
	COCO_RUN_N=$((COCO_RUN_N + 1))
	_cr_out="$COCO_TMP/out.$COCO_RUN_N"
	_cr_rc="$COCO_TMP/rc.$COCO_RUN_N"
	(
		timeout "$_cr_secs" "$@" >"$_cr_out" 2>&1 </dev/null
		echo "$?" >"$_cr_rc"
	) &
	_cr_pid=$!
	_cr_deadline=$(($(coco_now) + _cr_secs + 5))
	while [ ! -s "$_cr_rc" ]; do
		if [ "$(coco_now)" -ge "$_cr_deadline" ]; then
			kill -9 "$_cr_pid" 2>/dev/null
			COCO_RUN_OUT="$(cat "$_cr_out" 2>/dev/null)[still running after $((_cr_secs + 5)) s: abandoned]"
			return 124
		fi
		coco_tick
	done
	wait "$_cr_pid" 2>/dev/null
	COCO_RUN_OUT=$(cat "$_cr_out" 2>/dev/null)
	read -r _cr_status <"$_cr_rc"
	rm -f "$_cr_out" "$_cr_rc"
	return "${_cr_status:-1}"
}

# coco_timed_out STATUS: STATUS of coco_run means the command ran out of time
# (124: abandoned or GNU timeout; 143/137: busybox timeout's SIGTERM/SIGKILL).
coco_timed_out() {
	case "$1" in
	124 | 137 | 143) return 0 ;;
	esac
	return 1
}

# coco_write SECS FILE VALUE: echo VALUE > FILE under coco_run.
coco_write() {
	# shellcheck disable=SC2016 # expanded by the inner sh
	coco_run "$1" sh -c 'echo "$1" > "$2"' sh "$3" "$2"
}

# coco_run_diag WHAT STATUS: diagnostic for a coco_run result.
coco_run_diag() {
	coco_diag "$1: exit status $2${COCO_RUN_OUT:+: $COCO_RUN_OUT}"
}

# ---------------------------------------------------------------- devices

# coco_devices: BDFs of every PCI function with a coco directory, one a line.
coco_devices() {
	for _cdv_d in "$COCO_PCI"/*; do
		[ -d "$_cdv_d/coco" ] && echo "${_cdv_d##*/}"
	done
	return 0
}

# coco_count: number of PCI functions with a coco directory.
coco_count() {
	_cco_n=0
	for _cco_d in "$COCO_PCI"/*; do
		[ -d "$_cco_d/coco" ] && _cco_n=$((_cco_n + 1))
	done
	echo "$_cco_n"
}

coco_count_is() {
	[ "$(coco_count)" -eq "$1" ]
}

# coco_attr BDF NAME: contents of coco/NAME (trailing newline stripped,
# empty if unreadable).
coco_attr() {
	cat "$COCO_PCI/$1/coco/$2" 2>/dev/null
}

coco_class() {
	cat "$COCO_PCI/$1/class" 2>/dev/null
}

coco_is_nvme() {
	[ "$(coco_class "$1")" = "$COCO_NVME_CLASS" ]
}

# coco_driver BDF: name of the bound driver, empty if none.
coco_driver() {
	_cdr_l=$(readlink "$COCO_PCI/$1/driver" 2>/dev/null) || return 0
	echo "${_cdr_l##*/}"
}

# coco_settled BDF...: every one has a coco/status that is not "pending".
coco_settled() {
	for _cs_b in "$@"; do
		_cs_s=$(coco_attr "$_cs_b" status)
		[ -n "$_cs_s" ] && [ "$_cs_s" != pending ] || return 1
	done
	return 0
}

# coco_all_ok BDF...: every one has status "ok".
coco_all_ok() {
	for _cao_b in "$@"; do
		[ "$(coco_attr "$_cao_b" status)" = ok ] || return 1
	done
	return 0
}

# coco_wait_ok SECS BDF...: wait until all are settled, then all must be ok.
# Prints a diagnostic for each one that is not.
coco_wait_ok() {
	_cwo_secs=$1
	shift
	coco_poll "$_cwo_secs" coco_settled "$@"
	_cwo_rc=0
	for _cwo_b in "$@"; do
		_cwo_s=$(coco_attr "$_cwo_b" status)
		if [ "$_cwo_s" != ok ]; then
			coco_diag "$_cwo_b: status '$_cwo_s' (wanted 'ok' within $_cwo_secs s)"
			_cwo_rc=1
		fi
	done
	return "$_cwo_rc"
}

# coco_rescan BDF [SECS]: write 1 to coco/rescan, bounded (default 15 s).
coco_rescan() {
	coco_write "${2:-15}" "$COCO_PCI/$1/coco/rescan" 1
}

# coco_show BDF: dump a function's coco state as diagnostics.
coco_show() {
	coco_diag "$1: class $(coco_class "$1") driver '$(coco_driver "$1")'" \
		"$1: status '$(coco_attr "$1" status)'" \
		"$1: spdm_versions '$(coco_attr "$1" spdm_versions)'" \
		"$1: doe_features '$(coco_attr "$1" doe_features)'"
}

# ---------------------------------------------------------------- module

coco_loaded() {
	grep -q '^coco ' /proc/modules 2>/dev/null
}

coco_gone() {
	! coco_loaded && [ ! -d /sys/module/coco ]
}

# The rig's trust anchor: the root CA of its endpoints (absent when the tests
# run by hand; then nothing is loaded).
COCO_ROOT_DER=${COCO_ROOT_DER:-/coco/root.der}

# coco_trust_root: add the trust anchor to the .coco keyring (which coco.ko
# creates when it loads, empty). Prints nothing; fails if keyctl fails.
coco_trust_root() {
	[ -r "$COCO_ROOT_DER" ] || return 0
	keyctl padd asymmetric coco-rig-root %:.coco <"$COCO_ROOT_DER" >/dev/null
}

# coco_auth_settled BDF...: every auth_status is readable and not "pending".
coco_auth_settled() {
	for _cas_b in "$@"; do
		_cas_s=$(coco_attr "$_cas_b" auth_status)
		[ -n "$_cas_s" ] && [ "$_cas_s" != pending ] || return 1
	done
	return 0
}

# coco_insmod [PARAM=VALUE...]: load coco.ko (with those module parameters)
# as an administrator would: insmod, add the trust anchor to the new (empty)
# .coco keyring, and once the first (untrusted) authentications are over,
# authenticate every function again.
coco_insmod() {
	coco_run 60 insmod "$COCO_KO" "$@" || return
	[ -r "$COCO_ROOT_DER" ] || return 0
	coco_trust_root || { coco_diag "keyctl padd %:.coco failed"; return 1; }
	# shellcheck disable=SC2046 # a list of BDFs, split on purpose
	coco_poll 20 coco_auth_settled $(coco_devices)
	for _ci_b in $(coco_devices); do
		[ "$(cat "$COCO_PCI/$_ci_b/authenticated" 2>/dev/null)" = 1 ] && continue
		coco_write 15 "$COCO_PCI/$_ci_b/authenticated" 1 2>/dev/null
	done
	return 0
}

coco_rmmod() {
	coco_run 60 rmmod coco
}

# coco_ensure_loaded: the rig expects coco.ko loaded after every test.
coco_ensure_loaded() {
	coco_loaded && return 0
	coco_diag "cleanup: coco is not loaded, insmod $COCO_KO"
	coco_insmod || coco_run_diag "cleanup: insmod" "$?"
}

# ---------------------------------------------------------------- kernel log

# coco_log_mark NAME: remember the current end of the kernel log.
coco_log_mark() {
	COCO_MARK="coco-selftest: $1 mark $(cut -d' ' -f1 /proc/uptime) pid $$"
	COCO_MARK_LINES=$(dmesg | wc -l)
	echo "<6>$COCO_MARK" 2>/dev/null >/dev/kmsg || COCO_MARK=
}

# coco_log_since / coco_log_since_raw: kernel log after the last
# coco_log_mark (raw: with the <level> prefixes of dmesg -r). The whole log,
# with a diagnostic on stderr, if the mark is lost.
coco_log_since() {
	_coco_log_after "$(dmesg | coco_drop_known_upstream)"
}

coco_log_since_raw() {
	_coco_log_after "$(dmesg -r | coco_drop_known_upstream)"
}

# coco_drop_known_upstream: drop from a kernel log on stdin the reports of
# known Linux 7.3 issues that do not involve coco. Only one so far: lockdep's
# "possible circular locking dependency" between pci_rescan_remove_lock and
# pciehp's ctrl->reset_lock in pciehp_unconfigure_device(), printed on every
# pciehp hot-unplug with or without coco loaded (see tools/testing/selftests/
# coco/README). A report that mentions coco is never dropped.
coco_drop_known_upstream() {
	awk '
	/WARNING: possible circular locking dependency detected/ { inblk = 1; n = 0 }
	inblk {
		blk[n++] = $0
		if ($0 ~ /<\/TASK>/) {
			all = ""
			for (i = 0; i < n; i++) all = all "\n" blk[i]
			known = all ~ /pci_rescan_remove_lock/ && all ~ /ctrl->reset_lock/ &&
				all ~ /pciehp_unconfigure_device/ && all !~ /coco/
			if (!known) for (i = 0; i < n; i++) print blk[i]
			inblk = 0
		}
		next
	}
	{ print }
	END { if (inblk) for (i = 0; i < n; i++) print blk[i] }'
}

_coco_log_after() {
	if [ -n "$COCO_MARK" ] && printf '%s\n' "$1" | grep -qF "$COCO_MARK"; then
		printf '%s\n' "$1" |
			awk -v m="$COCO_MARK" 'f { print } index($0, m) { f = 1 }'
	elif [ -z "$COCO_MARK" ] && [ -n "$COCO_MARK_LINES" ] &&
		[ "$(printf '%s\n' "$1" | wc -l)" -ge "$COCO_MARK_LINES" ]; then
		printf '%s\n' "$1" | tail -n "+$((COCO_MARK_LINES + 1))"
	else
		coco_diag "kernel log mark lost (log wrapped?): using the whole log" >&2
		printf '%s\n' "$1"
	fi
}

# shellcheck disable=SC2034 # used by the tests
# Extended regexp for kernel splats (any of them fails a "no error" check).
COCO_SPLAT_RE='BUG:|WARNING:|UBSAN:|Oops|Call Trace|kernel BUG at|general protection fault|panicked at|Kernel panic'

# coco_log_errors: filter a raw log (dmesg -r) on stdin down to the lines the
# kernel logged at KERN_ERR or worse, coco failures and splats (our own marker
# lines excluded).
coco_log_errors() {
	grep -E "^<[0-3]>|coco: (probe failed|cannot)|$COCO_SPLAT_RE" | grep -v 'coco-selftest: '
}

# coco_need_endpoints REASON: sets N to COCO_ENDPOINTS (a number) after the
# KTAP header, or ends the test with a KTAP skip naming REASON when there is
# no host-side endpoint to act on.
coco_need_endpoints() {
	N=${COCO_ENDPOINTS:-0}
	case "$N" in
	'' | *[!0-9]*) N=0 ;;
	esac
	ktap_print_header
	if [ "$N" -lt 1 ]; then
		ktap_skip_all "COCO_ENDPOINTS is not set: $1"
		exit "$KSFT_SKIP"
	fi
}

# coco_default_cleanup: EXIT trap of the tests that change module state:
# leave coco loaded and remove the scratch directory.
coco_default_cleanup() {
	coco_ensure_loaded
	[ -n "$COCO_TMP" ] && rm -rf "$COCO_TMP"
}

# coco_start_all_ok: all COCO_ENDPOINTS functions are tracked (DEVS, COUNT)
# and reach status ok.
coco_start_all_ok() {
	[ "$COUNT" -eq "$N" ] || { coco_diag "$COUNT coco directories, COCO_ENDPOINTS=$N"; return 1; }
	# shellcheck disable=SC2086 # a list of BDFs, split on purpose
	coco_wait_ok 20 $DEVS
}

# coco_log_since_init: the kernel log from the line the rig's /init writes
# before loading coco.ko ("coco-rig: /init started") on; the whole log when
# that line is missing (tests run by hand).
coco_log_since_init() {
	dmesg | awk '/coco-rig: \/init started/ { f = 1 } f { print }' >"${COCO_TMP:-/tmp}/.coco-log.$$"
	if [ -s "${COCO_TMP:-/tmp}/.coco-log.$$" ]; then
		cat "${COCO_TMP:-/tmp}/.coco-log.$$"
	else
		dmesg
	fi
	rm -f "${COCO_TMP:-/tmp}/.coco-log.$$"
}

# coco_expected_count: at least one function is tracked (COUNT) and, when
# the rig says how many endpoints there are (N), exactly that many.
coco_expected_count() {
	[ "$COUNT" -ge 1 ] || { coco_diag "no coco directory"; return 1; }
	if [ -n "$N" ] && [ "$COUNT" -ne "$N" ]; then
		coco_diag "$COUNT coco directories, COCO_ENDPOINTS=$N"
		return 1
	fi
	return 0
}

# coco_for_all FN: FN BDF for every tracked function (DEVS); all must pass,
# and there must be at least one.
coco_for_all() {
	[ "$COUNT" -ge 1 ] || return 1
	_fa_rc=0
	for _fa_b in $DEVS; do
		"$1" "$_fa_b" || _fa_rc=1
	done
	return "$_fa_rc"
}
