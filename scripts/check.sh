#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# make check: every test layer, one verdict.
#   1. host: cargo fmt, cargo clippy -D warnings, cargo test (unit, integration, proptest)
#   2. kernel: the cached kernel build, coco.ko built with CLIPPY=1
#   3. guest: KUnit (coco suite) + the kselftests in QEMU, and a clean kernel log
# The last line is "N passed, N failed"; the exit status is non-zero on any failure.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$COCO_ROOT"

passed=0 failed=0
logdir=${COCO_LOG_DIR:-$COCO_CACHE/logs/check-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$logdir"

ok() { passed=$((passed + 1)); echo "ok - $*"; }
# rig_verdict LOG: adds the counts of a rig run's "rig: N passed, N failed" line.
rig_verdict() {
	local line p f
	line=$(grep '^rig: .* passed, .* failed' "$1" | tail -n 1)
	if [ -n "$line" ]; then
		p=$(echo "$line" | sed -E 's/^rig: ([0-9]+) passed.*/\1/')
		f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
		passed=$((passed + p)) failed=$((failed + f))
	else
		notok "the QEMU rig produced no verdict (see $1)"
	fi
}
notok() { failed=$((failed + 1)); echo "not ok - $*"; }

if [ "$(id -u)" = 0 ]; then
	scripts/setup.sh || { notok "setup"; echo "$passed passed, $failed failed"; exit 1; }
fi

echo "# host: cargo"
if cargo fmt --all -- --check >"$logdir/fmt.log" 2>&1; then ok "cargo fmt --check"; else notok "cargo fmt --check (see $logdir/fmt.log)"; fi
if cargo clippy --workspace --all-targets --quiet -- -D warnings >"$logdir/clippy.log" 2>&1; then
	ok "cargo clippy -D warnings"
else
	notok "cargo clippy -D warnings (see $logdir/clippy.log)"
	tail -n 20 "$logdir/clippy.log"
fi
cargo test --workspace >"$logdir/cargo-test.log" 2>&1
rc=$?
p=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /^passed;?$/) s += $i } END { print s + 0 }' "$logdir/cargo-test.log")
f=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /^failed;?$/) s += $i } END { print s + 0 }' "$logdir/cargo-test.log")
echo "# cargo test: $p passed, $f failed"
passed=$((passed + p)) failed=$((failed + f))
if [ $rc -ne 0 ] && [ "$f" = 0 ]; then
	notok "cargo test exited with $rc (build failure? see $logdir/cargo-test.log)"
	tail -n 20 "$logdir/cargo-test.log"
fi

echo "# kernel: build"
if scripts/build-kernel.sh >/dev/null 2>"$logdir/kernel.log"; then
	ok "kernel build (cached, keyed by version + fragment + overlay)"
	if scripts/build-modules.sh >/dev/null 2>"$logdir/modules.log" && ! grep -q "warning" "$logdir/modules.log"; then
		ok "coco.ko builds with CLIPPY=1 W=1 without warnings"
	else
		notok "coco.ko build (CLIPPY=1 W=1) failed or warned (see $logdir/modules.log)"
		tail -n 30 "$logdir/modules.log"
	fi
	echo "# guest: KUnit + kselftests"
	scripts/qemu-run.sh --no-setup --test --endpoints "${COCO_ENDPOINTS:-2}" --variant slots:0,1,2 \
		--variant heartbeat:3 --variant handshake:clear \
		--log-dir "$logdir" --timeout "${COCO_TIMEOUT:-1500}" | tee "$logdir/rig.log"
	rig_verdict "$logdir/rig.log"
	echo "# guest: authentication against misbehaving endpoints (one boot, one endpoint each)"
	faults=()
	for v in fault:busy:2 fault:not-ready fault:bad-signature fault:wrong-nonce \
		fault:truncated fault:oversized fault:digest-mismatch fault:expired-leaf \
		fault:broken-chain fault:unsupported-algorithm fault:wrong-header-version \
		fault:untrusted-root fault:wrong-version fault:garbage \
		fault:bad-meas-signature fault:malformed-block fault:duplicate-index \
		fault:oversized-record fault:no-meas-sig fault:refuse-all-blocks \
		fault:bad-kex-signature fault:wrong-verify-data fault:tampered-mac \
		fault:replayed-sequence fault:skipped-sequence fault:wrong-session-id \
		fault:refuse-key-update \
		handshake:clear+fault:wrong-verify-data handshake:clear+fault:bad-kex-signature \
		handshake:clear+fault:tampered-mac \
		key:p256 key:rsa3072 versions:1.0,1.1 slots:1,3 \
		cma-id:Vendor=1b36:Device=0011:CC=010802; do
		faults+=(--variant "$v")
	done
	mkdir -p "$logdir/faults"
	scripts/qemu-run.sh --no-setup --test --endpoints 0 "${faults[@]}" \
		--tests coco_auth_faults.sh --log-dir "$logdir/faults" \
		--timeout "${COCO_TIMEOUT:-1500}" | tee "$logdir/rig-faults.log"
	rig_verdict "$logdir/rig-faults.log"
else
	notok "kernel build (see $logdir/kernel.log)"
	tail -n 30 "$logdir/kernel.log"
fi

echo "# logs: $logdir"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
