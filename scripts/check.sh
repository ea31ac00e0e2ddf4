#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# make check: every test layer, one verdict.
#   1. host: cargo fmt, cargo clippy -D warnings, cargo test (unit, integration, proptest)
#   2. kernel: the cached kernel build, coco.ko built with CLIPPY=1
#   3. installation: the kernel-patch series (overlay and in-tree) apply to the pristine tree,
#      the in-tree Kconfig entry selects what coco.ko needs, the installed layout, the kernel
#      options coco.ko needs are set in the rig's kernel
#   4. guest: KUnit + the kselftests in QEMU (and a boot with one misbehaving endpoint per
#      fault), and a clean kernel log
# The last line is "N passed, N failed"; the exit status is non-zero on any failure.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$COCO_ROOT"

passed=0 failed=0
logdir=${COCO_LOG_DIR:-$COCO_CACHE/logs/check-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$logdir"
# For make bench: how long this run and its builds took (a build of a few seconds was cached).
started=$SECONDS kernel_s=- qemu_s=-

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
t0=$SECONDS
if scripts/build-kernel.sh >/dev/null 2>"$logdir/kernel.log"; then
	kernel_s=$((SECONDS - t0))
	ok "kernel build (cached, keyed by version + fragment + overlay)"
	if scripts/build-modules.sh >/dev/null 2>"$logdir/modules.log" && ! grep -q "warning" "$logdir/modules.log"; then
		ok "coco.ko and sev_tio.ko build with CLIPPY=1 W=1 without warnings"
	else
		notok "module build (CLIPPY=1 W=1) failed or warned (see $logdir/modules.log)"
		tail -n 30 "$logdir/modules.log"
	fi
	# The module's crate root reaches every kernel Rust file (and the protocol crates it
	# includes): formatted with the kernel's own rustfmt settings.
	if rustfmt --check --edition 2021 --config-path "$COCO_CACHE/src/.rustfmt.toml" \
		drivers/pci/coco/coco_main.rs drivers/crypto/ccp/tio/sev_tio_main.rs \
		>"$logdir/rustfmt.log" 2>&1; then
		ok "rustfmt --check of the kernel Rust (the kernel's .rustfmt.toml)"
	else
		notok "the kernel Rust is not rustfmt-clean (see $logdir/rustfmt.log)"
		head -n 20 "$logdir/rustfmt.log"
	fi
	echo "# the emulated TEE-IO platform: the project's QEMU (tools/testing/qemu), host side"
	t0=$SECONDS
	if qemu_bin=$(scripts/build-qemu.sh 2>"$logdir/qemu-build.log"); then
		qemu_s=$((SECONDS - t0))
		ok "the project's QEMU builds (cached, keyed by source version + patch series)"
		# The emulated endpoint and the PSP's firmware model the platform checks run against.
		cargo build --release --quiet -p coco-endpoint -p coco-psp >>"$logdir/qemu-build.log" 2>&1
		tools/testing/qemu/test-platform.py --qemu "$qemu_bin" >"$logdir/qemu-platform.log" 2>&1
		line=$(grep -E '^# [0-9]+ passed, [0-9]+ failed' "$logdir/qemu-platform.log" | tail -n 1)
		if [ -n "$line" ]; then
			p=$(echo "$line" | sed -E 's/^# ([0-9]+) passed.*/\1/')
			f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed/\1/')
			echo "# host platform model: $p passed, $f failed (see $logdir/qemu-platform.log)"
			grep '^not ok' "$logdir/qemu-platform.log"
			passed=$((passed + p)) failed=$((failed + f))
		else
			notok "tools/testing/qemu/test-platform.py printed no verdict (see $logdir/qemu-platform.log)"
		fi
	else
		notok "the project's QEMU does not build (see $logdir/qemu-build.log)"
		tail -n 20 "$logdir/qemu-build.log"
	fi
	# The rig's default platform is the TEE-IO one (the project's QEMU). For
	# coco_ide_platform.sh: a keyed endpoint, one under a root port without IDE, one
	# without IDE and TEE-IO; for coco_ide_connect.sh: one IDE_KM fault each, and one
	# with IDE but without TEE-IO; for coco_ide_refresh.sh: the two refresh faults.
	echo "# guest: KUnit + kselftests"
	scripts/qemu-run.sh --no-setup --test --psp --endpoints "${COCO_ENDPOINTS:-2}" --variant slots:0,1,2 \
		--variant heartbeat:3 --variant handshake:clear --variant ide-keys:1 \
		--variant platform:rp-no-ide --variant platform:no-ide+platform:no-tee-io \
		--variant fault:kp-ack-fail --variant fault:go-refused --variant fault:wrong-stream-id \
		--variant fault:ide-key-mismatch --variant platform:no-tee-io \
		--variant fault:refresh-kp-fail --variant fault:refresh-go-refused \
		--log-dir "$logdir" --timeout "${COCO_TIMEOUT:-1500}" | tee "$logdir/rig.log"
	rig_verdict "$logdir/rig.log"
	echo "# guest: authentication and TDISP against misbehaving endpoints (one boot, one endpoint each)"
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
		key:p256 key:rsa3072 key:p521 versions:1.0,1.1 versions:1.0 slots:1,3 \
		pki:no-keyusage pki:long-chain pki:pathlen-exceeded pki:ca-no-keycertsign \
		aead:aes128-gcm dhe:secp521r1 fault:bad-summary \
		measurements:sparse+fault:refuse-all-blocks \
		cma-id:Vendor=1b36:Device=0011:CC=010802 \
		fault:report-outside-bars fault:report-bad-length fault:stuck-locked \
		fault:slow-idekm fault:slow-idekm; do
		faults+=(--variant "$v")
	done
	# Every TDISP ERROR code LOCK_INTERFACE can answer (coco_tdisp_faults.sh).
	for c in invalid-request busy invalid-interface-state unspecified unsupported-request \
		version-mismatch vendor-specific-error invalid-interface invalid-nonce \
		insufficient-entropy invalid-device-configuration; do
		faults+=(--variant "fault:tdisp-error:$c")
	done
	mkdir -p "$logdir/faults"
	scripts/qemu-run.sh --no-setup --test --endpoints 0 "${faults[@]}" \
		--tests "coco_auth_faults.sh coco_tdisp_faults.sh coco_ide_abort.sh" --log-dir "$logdir/faults" \
		--timeout "${COCO_TIMEOUT:-1500}" | tee "$logdir/rig-faults.log"
	rig_verdict "$logdir/rig-faults.log"
	echo "# guest: the AMD SEV-TIO backend against a misbehaving PSP and device (one fault per endpoint)"
	mkdir -p "$logdir/sevtio"
	scripts/qemu-run.sh --no-setup --test --endpoints 5 --variant fault:bad-kex-signature \
		--psp-fault status:0xd4=0x35@01:00.0 --psp-fault relay-forever@02:00.0 \
		--psp-fault expand-forever@03:00.0 --psp-fault bad-rp-key@04:00.0 \
		--psp-fault status:0xd2=0x17@05:00.0 \
		--tests "coco_sevtio_faults.sh" --log-dir "$logdir/sevtio" \
		--timeout "${COCO_TIMEOUT:-1500}" | tee "$logdir/rig-sevtio.log"
	rig_verdict "$logdir/rig-sevtio.log"
	# A confidential guest (coco_guest.sh): three TDIs that verify but one the host blobs
	# tampers with and one it moves to ERROR, two more blobs tampered with, and devices whose
	# measurements differ, whose chain is untrusted, whose report lies.
	echo "# guest: a confidential guest verifies its assigned TDIs before their drivers probe"
	mkdir -p "$logdir/guest"
	scripts/qemu-run.sh --no-setup --test --guest --endpoints 5 --variant measurements:sparse \
		--variant fault:untrusted-root --variant fault:report-outside-bars \
		--psp-fault tamper:report@02:00.0 --psp-fault tdi-error-after:3@03:00.0 \
		--psp-fault tamper:certs@04:00.0 --psp-fault tamper:meas@05:00.0 \
		--tests "coco_guest.sh" --log-dir "$logdir/guest" \
		--timeout "${COCO_TIMEOUT:-1500}" | tee "$logdir/rig-guest.log"
	rig_verdict "$logdir/rig-guest.log"
else
	notok "kernel build (see $logdir/kernel.log)"
	tail -n 30 "$logdir/kernel.log"
fi

# Using coco on one's own machine (issue 17): the exported patch series, the
# installed layout and the kernel options (the guest side is coco_trust_dir.sh).
echo "# install: kernel patches, make install, kernel options"
if scripts/kernel-patches.sh --check >"$logdir/patches.log" 2>&1; then
	ok "make kernel-patches: the overlay series applies to the pristine kernel tree (git apply)"
else
	notok "the exported overlay series does not apply (see $logdir/patches.log)"
	tail -n 10 "$logdir/patches.log"
fi
if scripts/kernel-patches.sh --check --in-tree --modules --kconfig >"$logdir/patches-in-tree.log" 2>&1; then
	ok "make in-tree-patches: the in-tree series applies, its Kconfig entry selects what coco.ko needs, its drivers/pci/coco builds coco.ko"
else
	notok "the in-tree series does not apply or build (see $logdir/patches-in-tree.log)"
	tail -n 10 "$logdir/patches-in-tree.log"
fi
if scripts/check-install.sh >"$logdir/install.log" 2>&1; then
	ok "make install DESTDIR=... INSTALL_MOD_PATH=...: the layout README.md states"
else
	notok "make install layout (see $logdir/install.log)"
	tail -n 10 "$logdir/install.log"
fi
if scripts/kernel-options.sh --config "$COCO_CACHE/build/.config" >"$logdir/kernel-options.log" 2>&1; then
	ok "make kernel-options: every derived option is set in the rig's kernel"
else
	notok "make kernel-options: options missing from the rig's kernel (see $logdir/kernel-options.log)"
	grep 'not set\|error' "$logdir/kernel-options.log" | head -n 10
fi

echo "# logs: $logdir"
printf 'seconds=%s kernel_build=%s qemu_build=%s passed=%s failed=%s\n' \
	$((SECONDS - started)) "$kernel_s" "$qemu_s" "$passed" "$failed" >"$logdir/duration"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
