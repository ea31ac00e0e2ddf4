#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# make bench: measurements, never assertions. For the kernel with the debug
# options (KASAN, lockdep, kmemleak, ...) and without them (COCO_KVARIANT=nodebug,
# built once into its own cache directory):
#   - boot to /init, and until coco.ko has probed every endpoint,
#   - the whole KUnit + kselftest run,
#   - 100 synchronous probes (rescan: discovery, GET_VERSION and a re-authentication each),
#   - a cold and a warm authentication: exchanges, bytes, time,
#   - reading the measurements all at once vs per index, and the memory held,
#   - establishing a secure session, and secured messages per second over it,
#   - authenticating 1 vs 8 endpoints at once,
#   - the project's QEMU build (cold and cached), boot on stock vs the project's QEMU,
#   - a native IDE connect and key refresh (secured messages, time), 16 devices connected at once,
#   - a TDISP bind (lock + report) and start (secured messages, time), 16 TDIs bound at once,
#   - a connect through the AMD SEV-TIO backend (the emulated PSP: SPDM messages relayed, PSP
#     commands, time) against the native backend on the same device,
#   - a confidential guest: boot to every assigned TDI's driver bound (1 and 8 TDIs), and the
#     guest requests and time of one acceptance,
#   - the recorded durations of make check (.ci/run), warm and with a kernel build.
# Prints a table; logs go to $COCO_CACHE/logs/bench-*. COCO_BENCH="platform ide" runs only
# those parts (kernels, auth, platform, ide, tdisp, sevtio, guest, check).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$COCO_ROOT"

endpoints=${COCO_ENDPOINTS:-2}
# COCO_BENCH="part ...": only these parts (kernels auth platform ide tdisp sevtio guest check; default
# all).
want() {
	case " ${COCO_BENCH:-all} " in *" all "* | *" $1 "*) return 0 ;; esac
	return 1
}
logdir=$COCO_CACHE/logs/bench-$(date +%Y%m%d-%H%M%S)
mkdir -p "$logdir"
rescan='d=$(ls -d /sys/bus/pci/devices/*/coco | head -n 1); s=$(cut -d" " -f1 /proc/uptime); i=0; while [ $i -lt 100 ]; do echo 1 >"$d/rescan" || exit 1; i=$((i + 1)); done; e=$(cut -d" " -f1 /proc/uptime); echo "bench: 100 rescans in $(echo "$e $s" | awk "{printf \"%.2f\", \$1 - \$2}") s"'

# 500 HEARTBEATs written to coco/session, one secured request and response each.
msgs='d=$(ls -d /sys/bus/pci/devices/*/coco | head -n 1); m0=$(cat "$d/session_messages"); s=$(cut -d" " -f1 /proc/uptime); i=0; while [ $i -lt 500 ]; do echo heartbeat >"$d/session" || exit 1; i=$((i + 1)); done; e=$(cut -d" " -f1 /proc/uptime); m1=$(cat "$d/session_messages"); echo "bench: $((m1 - m0)) session messages in $(echo "$e $s" | awk "{printf \"%.2f\", \$1 - \$2}") s"'

if want kernels; then
printf '%-8s %10s %12s %12s %16s %14s\n' kernel "boot(s)" "probed(s)" "tests(s)" "100 rescans(s)" "session msg/s"
for v in debug nodebug; do
	COCO_KVARIANT=$v scripts/build-kernel.sh >/dev/null 2>"$logdir/$v-build.log" || { echo "$v: kernel build failed"; continue; }
	COCO_KVARIANT=$v scripts/qemu-run.sh --no-setup --test --endpoints "$endpoints" \
		--log-dir "$logdir/$v-test" >"$logdir/$v-test.out" 2>&1
	t=$(grep 'rig: timing' "$logdir/$v-test.out" | tail -n 1)
	boot=$(echo "$t" | sed -E 's/.*init at ([0-9.]+) s.*/\1/')
	probed=$(echo "$t" | sed -E 's/.*probed at ([0-9.]+) s.*/\1/')
	total=$(echo "$t" | sed -E 's/.*exited at ([0-9.]+) s.*/\1/')
	COCO_KVARIANT=$v scripts/qemu-run.sh --no-setup --endpoints 1 -- sh -c "$rescan" \
		>"$logdir/$v-rescan.out" 2>&1
	r=$(sed -n 's/^bench: 100 rescans in \([0-9.]*\) s/\1/p' "$logdir/$v-rescan.out")
	COCO_KVARIANT=$v scripts/qemu-run.sh --no-setup --endpoints 1 -- sh -c "$msgs" \
		>"$logdir/$v-session.out" 2>&1
	m=$(sed -nE 's/^bench: ([0-9]+) session messages in ([0-9.]+) s/\1 \2/p' "$logdir/$v-session.out" |
		awk '$2 > 0 { printf "%.0f", $1 / $2 }')
	printf '%-8s %10s %12s %12s %16s %14s\n' "$v" "$boot" "$probed" "$total" "${r:-n/a}" "${m:-n/a}"
done
echo "# tests(s) is QEMU start to power-off of 'qemu-run.sh --test --endpoints $endpoints'"
echo "# session msg/s: 500 HEARTBEATs written to coco/session (one secured DOE exchange each)"
fi

if want auth; then
# Authentication, from the kernel log of a boot in cmd mode (debug kernel).
# The first run after insmod is cold (no chain cached) and ends "not
# authenticated" (the .coco keyring is still empty, the trust check comes
# last: same exchanges as a trusted cold run); /init then loads the root and
# writes "authenticated": a warm run (chains cached, GET_CERTIFICATE skipped).
# stats LINE: "exchanges bytes-sent bytes-received ms" of a coco log line.
stats() {
	sed -nE 's/.* ([0-9]+) SPDM exchanges, ([0-9]+) bytes sent, ([0-9]+) received, [0-9]+ connection\(s\), ([0-9]+) us.*/\1 \2 \3 \4/p' <<<"$1" |
		awk '{ printf "%10s %12s %12s %10.1f", $1, $2, $3, $4 / 1000 }'
}
# A second endpoint refuses the all-blocks GET_MEASUREMENTS: its measurements
# are read index by index.
scripts/qemu-run.sh --no-setup --endpoints 1 --variant fault:refuse-all-blocks -- dmesg \
	>"$logdir/auth-meas.out" 2>&1
cold=$(grep -m1 '0000:01:00.0: coco: not authenticated: ' "$logdir/auth-meas.out")
warm=$(grep '0000:01:00.0: coco: authenticated: ' "$logdir/auth-meas.out" | tail -n 1)
printf '%-26s %10s %12s %12s %10s\n' authentication exchanges "bytes sent" "bytes recv" "time(ms)"
printf '%-26s %s\n' "cold (chain read)" "$(stats "$cold")"
printf '%-26s %s\n' "warm (chain cached)" "$(stats "$warm")"
echo "# after GET_VERSION; bytes are SPDM messages without DOE headers"

# Measurements (6 blocks, ECDSA P-384, SHA-512), from the same boot: all
# blocks in one signed request, vs index by index (the count, then each index,
# the last signed; after the refused all-blocks request), and the kernel
# memory one device's verified reading holds (blocks, L1/L2, signature).
mstats() {
	sed -nE 's/.*coco: measurements: ([0-9]+) blocks.*; ([0-9]+) SPDM exchanges \(([a-z ]+)\), ([0-9]+) bytes sent, ([0-9]+) received, ([0-9]+) us; ([0-9]+) bytes held.*/\1 \2 \4 \5 \6 \7/p' <<<"$1" |
		awk '{ printf "%7s %10s %12s %12s %10.1f %12s", $1, $2, $3, $4, $5 / 1000, $6 }'
}
all=$(grep '0000:01:00.0: coco: measurements: ' "$logdir/auth-meas.out" | tail -n 1)
per=$(grep '0000:02:00.0: coco: measurements: ' "$logdir/auth-meas.out" | tail -n 1)
printf '%-22s %7s %10s %12s %12s %10s %12s\n' measurements blocks exchanges "bytes sent" "bytes recv" "time(ms)" "bytes held"
printf '%-22s %s\n' "all at once (signed)" "$(mstats "$all")"
printf '%-22s %s\n' "per index" "$(mstats "$per")"

# Secure session establishment, same boot (KEY_EXCHANGE, FINISH, then the
# checks: an application message, KEY_UPDATE of both directions with their
# verification, HEARTBEAT).
sess=$(grep '0000:01:00.0: coco: session established: ' "$logdir/auth-meas.out" | tail -n 1)
printf '%-22s %s\n' "session" "$(sed -nE 's/.*session established: ([^,]*), slot [0-9]+[^;]*; ([0-9]+) SPDM exchanges, ([0-9]+) us.*/\1: \2 exchanges, \3 us/p' <<<"$sess")"

# 1 vs 8 endpoints authenticated at once (the first, parallel runs after
# insmod): span from the earliest start to the latest end, from the log
# lines' timestamps and durations. Close spans mean the devices run in
# parallel.
printf '%-10s %14s %18s\n' endpoints "span(s)" "slowest device(s)"
for n in 1 8; do
	scripts/qemu-run.sh --no-setup --endpoints "$n" -- dmesg >"$logdir/auth-$n.out" 2>&1
	grep 'coco: not authenticated: ' "$logdir/auth-$n.out" |
		sed -nE 's/^\[ *([0-9.]+)\].* ([0-9]+) us;.*/\1 \2/p' |
		awk -v n="$n" '
			{ end = $1; d = $2 / 1e6; if (NR == 1 || end - d < lo) lo = end - d
			  if (NR == 1 || end > hi) hi = end; if (d > slow) slow = d; c++ }
			END { if (c != n) printf "%-10s %14s %18s\n", n, "n/a (" c " runs)", "-"
			      else printf "%-10s %14.2f %18.2f\n", n, hi - lo, slow }'
done
fi

if want platform; then
# The TEE-IO platform (issue 12): the project's QEMU build, cold (an empty cache: the
# Debian source fetched and unpacked, the series applied, a full build; skip it with
# COCO_BENCH_QEMU_COLD=0) and cached; boot to coco.ko probed with 2 endpoints on Debian's
# QEMU 10.0 against the project's (IDE, TEE-IO and the side channel: about 50 events per
# function at boot).
printf '%-28s %12s\n' "project QEMU build" "time(s)"
if [ "${COCO_BENCH_QEMU_COLD:-1}" != 0 ]; then
	cold=$(mktemp -d)
	s=$SECONDS
	if COCO_CACHE=$cold scripts/build-qemu.sh >"$logdir/qemu-cold.out" 2>&1; then
		printf '%-28s %12s\n' "cold (empty cache)" $((SECONDS - s))
	else
		printf '%-28s %12s\n' "cold (empty cache)" "failed"
	fi
	rm -rf "$cold"
fi
s=$(date +%s.%N)
scripts/build-qemu.sh >/dev/null 2>&1
printf '%-28s %12s\n' "cached" "$(echo "$(date +%s.%N) $s" | awk '{ printf "%.2f", $1 - $2 }')"
printf '%-10s %10s %12s %12s\n' platform "boot(s)" "probed(s)" "exited(s)"
for p in stock tee-io; do
	scripts/qemu-run.sh --no-setup --platform "$p" --endpoints 2 -- true >"$logdir/boot-$p.out" 2>&1
	t=$(grep 'rig: timing' "$logdir/boot-$p.out" | tail -n 1)
	printf '%-10s %10s %12s %12s\n' "$p" \
		"$(echo "$t" | sed -nE 's/.*init at ([0-9.]+) s.*/\1/p')" \
		"$(echo "$t" | sed -nE 's/.*probed at ([0-9.]+) s.*/\1/p')" \
		"$(echo "$t" | sed -nE 's/.*exited at ([0-9.]+) s.*/\1/p')"
done
echo "# from QEMU start; 2 endpoints, debug kernel, qemu-run.sh -- true"
fi

if want ide; then
# The native IDE backend (coco/ide): secured messages and time of one connect (IDE_KM QUERY,
# 6 KEY_PROG, 6 K_SET_GO; the root port's keys through config space), the mean of 5; then 16
# devices connected at once (span from the first write to the last return). A key refresh
# (6 KEY_PROG, 6 K_SET_GO of the new set, 6 K_SET_STOP of the old), the mean of 5.
ide1='d=$(ls -d /sys/bus/pci/devices/*/coco | head -n 1); i=0; while [ $i -lt 5 ]; do echo connect >"$d/ide" && echo disconnect >"$d/ide" || exit 1; i=$((i + 1)); done; echo connect >"$d/ide" && for i in 1 2 3 4 5; do echo refresh >"$d/ide" || exit 1; done; dmesg | grep -E "coco: IDE stream .* (secure|keys refreshed)"'
ide16='s=$(cut -d" " -f1 /proc/uptime); for d in /sys/bus/pci/devices/*/coco; do (echo connect >"$d/ide") & done; wait; e=$(cut -d" " -f1 /proc/uptime); n=$(grep -l "^connected" /sys/bus/pci/devices/*/coco/ide | wc -l); echo "bench: $n connected at once in $(echo "$e $s" | awk "{printf \"%.2f\", \$1 - \$2}") s"'
scripts/qemu-run.sh --no-setup --endpoints 1 -- sh -c "$ide1" >"$logdir/ide-1.out" 2>&1
printf '%-28s %s\n' "IDE connect (mean of 5)" "$(sed -nE '/ secure \(stream/ s/.* ([0-9]+) secured messages, ([0-9]+) us.*/\1 \2/p' "$logdir/ide-1.out" |
	awk '{ m += $1; t += $2; n++ } END { if (n) printf "%.0f secured messages, %.1f ms", m / n, t / n / 1000; else print "n/a" }')"
printf '%-28s %s\n' "IDE key refresh (mean of 5)" "$(sed -nE 's/.*keys refreshed.* ([0-9]+) secured messages, ([0-9]+) us.*/\1 \2/p' "$logdir/ide-1.out" |
	awk '{ m += $1; t += $2; n++ } END { if (n) printf "%.0f secured messages, %.1f ms", m / n, t / n / 1000; else print "n/a" }')"
scripts/qemu-run.sh --no-setup --endpoints 16 -- sh -c "$ide16" >"$logdir/ide-16.out" 2>&1
printf '%-28s %s\n' "IDE connect, 16 at once" "$(sed -nE 's/^bench: ([0-9]+) connected at once in ([0-9.]+) s/\1 devices in \2 s/p' "$logdir/ide-16.out")"
fi

if want tdisp; then
# TDISP through the native backend (tdisp): secured messages and time of a bind (GET_VERSION,
# GET_CAPABILITIES, LOCK_INTERFACE, the report) and of a start (START_INTERFACE and the state
# read back), the mean of 5 each, on a connected function with no driver; then 16 functions
# connected, then bound at once (span of the binds).
tdi1='d=$(ls -d /sys/bus/pci/devices/*/coco | head -n 1); p=${d%/coco}; echo connect >"$d/ide" || exit 1; echo ${p##*/} >/sys/bus/pci/drivers/nvme/unbind; i=0; while [ $i -lt 5 ]; do echo bind >"$p/tdisp" && echo start >"$p/tdisp" && echo unbind >"$p/tdisp" || exit 1; echo ${p##*/} >/sys/bus/pci/drivers/nvme/unbind 2>/dev/null; i=$((i + 1)); done; dmesg | grep -E "coco: TDI (locked|started)"'
tdi16='for d in /sys/bus/pci/devices/*/coco; do p=${d%/coco}; echo connect >"$d/ide" && echo ${p##*/} >/sys/bus/pci/drivers/nvme/unbind; done; s=$(cut -d" " -f1 /proc/uptime); for d in /sys/bus/pci/devices/*/coco; do (echo bind >"${d%/coco}/tdisp") & done; wait; e=$(cut -d" " -f1 /proc/uptime); n=$(grep -l "^locked" /sys/bus/pci/devices/*/tdisp | wc -l); echo "bench: $n TDIs bound at once in $(echo "$e $s" | awk "{printf \"%.2f\", \$1 - \$2}") s"'
scripts/qemu-run.sh --no-setup --endpoints 1 -- sh -c "$tdi1" >"$logdir/tdisp-1.out" 2>&1
for step in "locked:TDISP bind (mean of 5)" "started:TDISP start (mean of 5)"; do
	printf '%-28s %s\n' "${step#*:}" "$(sed -nE "/coco: TDI ${step%%:*}/ s/.* ([0-9]+) secured messages, ([0-9]+) us.*/\1 \2/p" "$logdir/tdisp-1.out" |
		awk '{ m += $1; t += $2; n++ } END { if (n) printf "%.0f secured messages, %.1f ms", m / n, t / n / 1000; else print "n/a" }')"
done
scripts/qemu-run.sh --no-setup --endpoints 16 -- sh -c "$tdi16" >"$logdir/tdisp-16.out" 2>&1
printf '%-28s %s\n' "TDISP bind, 16 at once" "$(sed -nE 's/^bench: ([0-9]+) TDIs bound at once in ([0-9.]+) s/\1 TDIs in \2 s/p' "$logdir/tdisp-16.out")"
fi

if want sevtio; then
# The AMD SEV-TIO backend on the emulated PSP against the native backend, on the same device,
# through tsm/connect and tdisp bind, the mean of 5 each. The PSP's connect is the whole of it: the PSP's SPDM
# (VCA, certificates, KEY_EXCHANGE, FINISH), IDE_KM, its root-port keys, and the evidence it
# returns (TIO_DEV_CERTIFICATES, TIO_DEV_MEASUREMENTS), every SPDM message relayed by the host.
# The native connect runs IDE_KM over the session coco.ko opened when it authenticated the
# device (before the timed part): its authentication is the "auth" part above.
tio1='insmod /lib/modules/sev_tio.ko || exit 1; d=$(ls -d /sys/bus/pci/devices/*/coco | head -n 1); p=${d%/coco}; t= n=; for x in /sys/class/tsm/tsm*; do case "$(basename "$(readlink -f "$x/device")")" in coco) n=$(basename "$x") ;; *) t=$(basename "$x") ;; esac; done; settle() { k=0; while [ "$(cat "$d/session")" != established ] && [ $k -lt 100 ]; do sleep 0.1; k=$((k + 1)); done; }; unb() { [ ! -e "$p/driver" ] || echo "${p##*/}" >/sys/bus/pci/drivers/nvme/unbind; }; walk() { settle; echo "$1" >"$p/tsm/connect" && unb && echo bind >"$p/tdisp" && echo unbind >"$p/tdisp" && echo "$1" >"$p/tsm/disconnect"; }; i=0; while [ $i -lt 5 ]; do walk "$t" && walk "$n" || exit 1; i=$((i + 1)); done; dmesg | grep -E "sev-tio: (connected by the PSP|TDI locked by the PSP)|coco: IDE stream .* secure|coco: TDI locked on"'
scripts/qemu-run.sh --no-setup --psp --endpoints 1 -- sh -c "$tio1" >"$logdir/sevtio-1.out" 2>&1
printf '%-28s %s\n' "SEV-TIO connect (mean of 5)" "$(sed -nE 's/.*connected by the PSP: .* ([0-9]+) SPDM messages relayed, ([0-9]+) PSP commands, ([0-9]+) us.*/\1 \2 \3/p' "$logdir/sevtio-1.out" |
	awk '{ m += $1; c += $2; t += $3; n++ } END { if (n) printf "%.0f relayed SPDM messages, %.0f PSP commands, %.1f ms", m / n, c / n, t / n / 1000; else print "n/a" }')"
printf '%-28s %s\n' "native connect (mean of 5)" "$(sed -nE '/ secure \(stream/ s/.* ([0-9]+) secured messages, ([0-9]+) us.*/\1 \2/p' "$logdir/sevtio-1.out" |
	awk '{ m += $1; t += $2; n++ } END { if (n) printf "%.0f secured messages, %.1f ms", m / n, t / n / 1000; else print "n/a" }')"
printf '%-28s %s\n' "SEV-TIO TDI bind (mean of 5)" "$(sed -nE 's/.*TDI locked by the PSP: .* ([0-9]+) SPDM messages relayed, ([0-9]+) PSP commands, ([0-9]+) us.*/\1 \2 \3/p' "$logdir/sevtio-1.out" |
	awk '{ m += $1; c += $2; t += $3; n++ } END { if (n) printf "%.0f relayed SPDM messages, %.0f PSP commands, %.1f ms", m / n, c / n, t / n / 1000; else print "n/a" }')"
printf '%-28s %s\n' "native TDI bind (mean of 5)" "$(sed -nE '/coco: TDI locked on/ s/.* ([0-9]+) secured messages, ([0-9]+) us.*/\1 \2/p' "$logdir/sevtio-1.out" |
	awk '{ m += $1; t += $2; n++ } END { if (n) printf "%.0f secured messages, %.1f ms", m / n, t / n / 1000; else print "n/a" }')"
fi

if want guest; then
# A confidential guest (the rig's --guest boot, Documentation/coco/sev-tio-guest.rst): from the
# kernel's start to every assigned function's NVMe driver bound, for 1 and 8 TDIs, and what one
# acceptance costs: guest requests (TIO_OP and TIO_GUEST_REQUEST) and time. The pass at load
# binds the TDI and fails on the still empty .coco keyring; /init then loads the trust anchor
# (as an installed system's udev rule does) and each TDI is verified again and accepted, its
# bind kept: that pass is the one timed, "since found" counts both.
g='dmesg | grep -E "coco: TDI bound, verified and accepted|nvme nvme[0-9]+: pci function"'
for n in 1 8; do
	scripts/qemu-run.sh --no-setup --guest --endpoints "$n" -- sh -c "$g" >"$logdir/guest-$n.out" 2>&1
	last=$(sed -nE 's/^\[ *([0-9.]+)\] nvme nvme[0-9]+: pci function.*/\1/p' "$logdir/guest-$n.out" | sort -n | tail -n 1)
	count=$(grep -c 'nvme nvme[0-9]*: pci function' "$logdir/guest-$n.out")
	printf '%-28s %s\n' "guest boot, $n TDI(s)" "kernel start to the last driver bound: ${last:-n/a} s ($count of $n bound)"
done
printf '%-28s %s\n' "guest acceptance (8 TDIs)" "$(sed -nE 's/.*accepted in ([0-9]+) us, ([0-9]+) guest requests \(([0-9]+) since.*/\1 \2 \3/p' "$logdir/guest-8.out" |
	awk '{ t += $1; r += $2; a += $3; n++ } END { if (n) printf "%.0f guest requests (%.0f since found), %.1f ms, mean of %d", r / n, a / n, t / n / 1000, n; else print "n/a" }')"
fi

if want check; then
# make check (.ci/run) runs as recorded by scripts/check.sh: the newest run whose kernel
# build was cached, and the newest that built the kernel (a fresh cache or machine).
printf '%-34s %10s %14s %12s %16s\n' "make check" "total(s)" "kernel build" "QEMU build" "passed/failed"
warm="" cold=""
for f in $(ls -td "$COCO_CACHE"/logs/check-*/ 2>/dev/null); do
	[ -f "$f/duration" ] || continue
	kb=$(sed -nE 's/.*kernel_build=([0-9-]+).*/\1/p' "$f/duration")
	if [ -z "$warm" ] && [ "$kb" != - ] && [ "$kb" -lt 60 ]; then warm=$f; fi
	if [ -z "$cold" ] && [ "$kb" != - ] && [ "$kb" -ge 60 ]; then cold=$f; fi
done
for r in "warm:$warm" "kernel built:$cold"; do
	f=${r#*:}
	if [ -z "$f" ]; then
		printf '%-34s %10s\n' "${r%%:*}" "none recorded"
		continue
	fi
	eval "$(tr ' ' '\n' <"$f/duration" | grep -E '^[a-z_]+=[0-9-]+$')"
	printf '%-34s %10s %14s %12s %16s\n' "${r%%:*} ($(basename "$f"))" "$seconds" "$kernel_build" \
		"$qemu_build" "$passed/$failed"
done
echo "# a fresh machine adds the apt installs of scripts/setup.sh to the 'kernel built' run"
fi
echo "# logs: $logdir"
