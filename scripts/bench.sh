#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# make bench: measurements, never assertions. For the kernel with the debug
# options (KASAN, lockdep, kmemleak, ...) and without them (COCO_KVARIANT=nodebug,
# built once into its own cache directory):
#   - boot to /init, and until coco.ko has probed every endpoint,
#   - the whole KUnit + kselftest run,
#   - 100 synchronous probes (rescan: discovery, GET_VERSION and a re-authentication each),
#   - authenticating 1 vs 8 endpoints at once.
# Prints a table; logs go to $COCO_CACHE/logs/bench-*.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$COCO_ROOT"

endpoints=${COCO_ENDPOINTS:-2}
logdir=$COCO_CACHE/logs/bench-$(date +%Y%m%d-%H%M%S)
mkdir -p "$logdir"
rescan='d=$(ls -d /sys/bus/pci/devices/*/coco | head -n 1); s=$(cut -d" " -f1 /proc/uptime); i=0; while [ $i -lt 100 ]; do echo 1 >"$d/rescan" || exit 1; i=$((i + 1)); done; e=$(cut -d" " -f1 /proc/uptime); echo "bench: 100 rescans in $(echo "$e $s" | awk "{printf \"%.2f\", \$1 - \$2}") s"'

printf '%-8s %10s %12s %12s %16s\n' kernel "boot(s)" "probed(s)" "tests(s)" "100 rescans(s)"
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
	printf '%-8s %10s %12s %12s %16s\n' "$v" "$boot" "$probed" "$total" "${r:-n/a}"
done
echo "# tests(s) is QEMU start to power-off of 'qemu-run.sh --test --endpoints $endpoints'"

# Authentication of 1 vs 8 endpoints at once (debug kernel): time from /init
# to every function probed and authenticated (the summary waits for both);
# close to equal times mean the devices are authenticated in parallel.
printf '%-10s %22s\n' endpoints "init->authenticated(s)"
for n in 1 8; do
	scripts/qemu-run.sh --no-setup --endpoints "$n" --log-dir "$logdir/auth-$n" \
		>"$logdir/auth-$n.out" 2>&1
	t=$(grep 'rig: timing' "$logdir/auth-$n.out" | tail -n 1)
	boot=$(echo "$t" | sed -E 's/.*init at ([0-9.]+) s.*/\1/')
	probed=$(echo "$t" | sed -E 's/.*probed at ([0-9.]+) s.*/\1/')
	printf '%-10s %22s\n' "$n" "$(echo "$probed $boot" | awk '{printf "%.1f", $1 - $2}')"
done
echo "# logs: $logdir"
