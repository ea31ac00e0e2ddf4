#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Boot the coco rig: installs what is missing, builds what is stale, starts the
# emulated endpoint(s), boots QEMU (q35, TCG) with one NVMe function with a DOE
# mailbox per endpoint, loads coco.ko and prints what it found.
#
#   scripts/qemu-run.sh [options] [-- CMD...]
#
#   --endpoints N        number of emulated endpoints / NVMe functions (default 1)
#   --external-port P    use an already running responder on localhost:P instead
#                        of starting the project's endpoint (repeatable: one
#                        NVMe function per port)
#   --variant KIND:VALUE one more endpoint started with that option (repeatable;
#                        KIND: fault, key, versions, slots, cma-id, heartbeat,
#                        handshake): fault:K (coco-endpoint --fault K), key:K,
#                        versions:L, slots:L, heartbeat:SECS (--heartbeat-period),
#                        handshake:clear (--handshake-in-clear);
#                        the guest sees COCO_VARIANTS="<index>:<variant> ..."
#   --trust-anchor FILE  a root certificate (DER or PEM; PEM is converted with
#                        openssl here) for the guest's /etc/coco/trust, which
#                        /init loads into .coco before authenticating the
#                        devices again, e.g. the root of an --external-port
#                        responder (repeatable; the key is named after FILE)
#   --copy HOST:GUEST    copy the host file HOST to the absolute path GUEST in
#                        the guest before /init runs (repeatable)
#   --tests "T..."       in --test mode, run only these kselftests (in this order)
#   --platform P         tee-io (default: the project's QEMU, scripts/build-qemu.sh:
#                        IDE on the endpoints and their root ports, TEE-IO;
#                        variants platform:no-ide, platform:no-tee-io,
#                        platform:rp-no-ide, ide-keys:STREAM) or stock (Debian's
#                        QEMU 10.0: no IDE, no TEE-IO)
#   --psp                the emulated PSP (AMD SEV-TIO, -device coco-psp) with its
#                        firmware model tools/testing/coco-psp started by the rig
#                        (tee-io platform only; the guest sees COCO_PSP=1)
#   --psp-fault F        start the firmware model with --fault F (repeatable;
#                        implies --psp unless --guest)
#   --guest              boot as a confidential guest (Documentation/coco/sev-tio-guest.rst):
#                        pci=tee_accept, each NVMe function an assigned TDI without
#                        DOE and with a namespace, the guest channel (-device
#                        coco-tio-guest) served by coco-psp as host and TSM; the
#                        guest sees COCO_GUEST=1 and /lib/firmware/coco/measurements.ref
#   --shell              interactive shell on the serial console
#   --test               run KUnit + the kselftests; last line "rig: N passed, N failed"
#   --timeout S          watchdog: end a run that takes longer (default 900 s)
#   --log-dir D          keep the console and endpoint logs in D
#   --no-setup           do not run scripts/setup.sh (needs root) first
#   --verbose            print the whole console and the QEMU command line
#   -- CMD...            run CMD in the guest after coco.ko is loaded, print its
#                        output and exit with its status
#
# Environment: COCO_CACHE (cache directory), COCO_ENDPOINT_BIN (use this
# endpoint binary instead of building tools/testing/coco-endpoint),
# COCO_PSP_BIN (likewise, the firmware model instead of tools/testing/coco-psp),
# COCO_EXPECTED_VERSIONS (versions the tests expect, default "1.0 1.1 1.2 1.3"),
# COCO_KVARIANT=nodebug (boot the kernel built without the debug options)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

endpoints=1 mode=summary timeout=900 setup=1 verbose=() logdir=() ext=() cmd=() variants=() tests=""
platform=${COCO_PLATFORM:-tee-io}
anchors=() copies=() psp=0 psp_faults=() guest=0
while [ $# -gt 0 ]; do
	case "$1" in
	--endpoints) endpoints=$2; shift 2 ;;
	--external-port) ext+=(--external-port "$2"); shift 2 ;;
	--variant) variants+=("$2"); shift 2 ;;
	--tests) tests=$2; shift 2 ;;
	--platform) platform=$2; shift 2 ;;
	--trust-anchor) anchors+=("$2"); shift 2 ;;
	--copy) copies+=("$2"); shift 2 ;;
	--psp) psp=1; shift ;;
	--psp-fault) psp=1; psp_faults+=(--psp-fault "$2"); shift 2 ;;
	--guest) guest=1; shift ;;
	--shell) mode=shell; shift ;;
	--test) mode=test; shift ;;
	--timeout) timeout=$2; shift 2 ;;
	--log-dir) mkdir -p "$2"; logdir=(--log-dir "$(cd "$2" && pwd)"); shift 2 ;;
	--no-setup) setup=0; shift ;;
	--verbose) verbose=(--verbose); shift ;;
	--) shift; cmd=("$@"); mode=cmd; break ;;
	-h | --help) sed -n '3,56p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown option $1 (see --help)" ;;
	esac
done
[ "${#ext[@]}" -gt 0 ] && endpoints=$((${#ext[@]} / 2))

if [ "$setup" = 1 ]; then
	if [ "$(id -u)" = 0 ]; then
		"$COCO_ROOT/scripts/setup.sh"
	else
		warn "not root: skipping setup (scripts/setup.sh installs the prerequisites as root)"
	fi
fi

KB=$("$COCO_ROOT/scripts/build-kernel.sh")
qemu=()
case "$platform" in
stock) ;;
tee-io)
	qemu_bin=$("$COCO_ROOT/scripts/build-qemu.sh") || die "cannot build the project's QEMU"
	qemu=(--qemu "$qemu_bin" --platform tee-io)
	;;
*) die "--platform $platform: want stock or tee-io" ;;
esac
if [ -z "${COCO_ENDPOINT_BIN:-}" ]; then
	(cd "$COCO_ROOT" && cargo build --release --quiet -p coco-endpoint) || die "cannot build coco-endpoint"
	COCO_ENDPOINT_BIN=$COCO_ROOT/target/release/coco-endpoint
fi
psp_args=()
if [ "$psp" = 1 ] || [ "$guest" = 1 ]; then
	[ "$platform" = tee-io ] || die "--psp and --guest need --platform tee-io (the project's QEMU)"
	if [ -z "${COCO_PSP_BIN:-}" ]; then
		(cd "$COCO_ROOT" && cargo build --release --quiet -p coco-psp) || die "cannot build coco-psp"
		COCO_PSP_BIN=$COCO_ROOT/target/release/coco-psp
	fi
	if [ "$guest" = 1 ]; then
		psp=0
		psp_args=(--guest --psp-bin "$COCO_PSP_BIN" "${psp_faults[@]}")
	else
		psp_args=(--psp --psp-bin "$COCO_PSP_BIN" "${psp_faults[@]}")
	fi
fi
if [ -z "${COCO_VERIFY_BIN:-}" ]; then
	(cd "$COCO_ROOT" && cargo build --release --quiet -p coco-verify) || die "cannot build coco-verify"
	COCO_VERIFY_BIN=$COCO_ROOT/target/release/coco-verify
fi
export COCO_VERIFY_BIN
MODS=$(COCO_KBUILD=$KB "$COCO_ROOT/scripts/build-modules.sh")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# One PKI for the run's endpoints: its root goes into the guest's .coco keyring.
pki=()
if [ ${#ext[@]} -eq 0 ]; then
	"$COCO_ENDPOINT_BIN" --count 1 --pki-dir "$work/pki" --pki-only 2>/dev/null ||
		die "cannot create the endpoints' PKI"
	pki=(--pki-dir "$work/pki")
fi
"$COCO_ROOT/scripts/mkinitramfs.sh" "$work/base.cpio.gz" "$MODS" "$COCO_CACHE/src"

# Per-run configuration, appended as a second cpio archive.
mkdir -p "$work/cfg/coco"
{
	echo "COCO_MODE=$mode"
	echo "COCO_ENDPOINTS=$((endpoints + ${#variants[@]}))"
	vlist="" i=$endpoints
	for v in "${variants[@]}"; do vlist="$vlist $i:$v" i=$((i + 1)); done
	echo "COCO_VARIANTS='${vlist# }'"
	echo "COCO_TESTS='$tests'"
	echo "COCO_PLATFORM=$platform"
	echo "COCO_PSP=$psp"
	echo "COCO_GUEST=$guest"
	pf=""
	for f in "${psp_faults[@]}"; do [ "$f" = --psp-fault ] || pf="$pf $f"; done
	echo "COCO_PSP_FAULTS='${pf# }'"
	echo "COCO_EXPECTED_VERSIONS='${COCO_EXPECTED_VERSIONS:-1.0 1.1 1.2 1.3}'"
} >"$work/cfg/coco/run.env"
[ -f "$work/pki/root.der" ] && cp "$work/pki/root.der" "$work/cfg/coco/root.der"
# Trust anchors for /etc/coco/trust (DER; a PEM file converted), named after the file.
for a in "${anchors[@]}"; do
	[ -f "$a" ] || die "--trust-anchor $a: no such file"
	name=${a##*/}
	name=${name%.*}
	mkdir -p "$work/cfg/etc/coco/trust"
	if grep -q -- '-----BEGIN CERTIFICATE-----' "$a"; then
		openssl x509 -in "$a" -outform DER -out "$work/cfg/etc/coco/trust/$name.der" ||
			die "--trust-anchor $a: openssl cannot read this PEM certificate"
	else
		openssl x509 -inform DER -in "$a" -noout ||
			die "--trust-anchor $a: not a DER or PEM certificate"
		cp "$a" "$work/cfg/etc/coco/trust/$name.der"
	fi
done
# Files copied into the guest: the last ':' separates the host and guest paths.
for c in "${copies[@]}"; do
	src=${c%:*} dst=${c##*:}
	[ "$src" != "$c" ] && [ -n "$src" ] || die "--copy $c: want HOSTFILE:GUESTPATH"
	case "$dst" in /?*) ;; *) die "--copy $c: the guest path must be absolute" ;; esac
	[ -f "$src" ] || die "--copy $c: no such file $src"
	mkdir -p "$work/cfg$(dirname "$dst")"
	cp -p "$src" "$work/cfg$dst"
done
# What the endpoints' default measurements look like with the hash they negotiate
# (SHA-512), before and after a firmware update: the reference for coco-verify.
if [ ${#ext[@]} -eq 0 ]; then
	"$COCO_ENDPOINT_BIN" --count 1 --measurements-reference sha512 >"$work/cfg/coco/measurements.ref" &&
		: >"$work/fw" &&
		"$COCO_ENDPOINT_BIN" --count 1 --fw-update-file "$work/fw" --measurements-reference sha512 \
			>"$work/cfg/coco/measurements-updated.ref" ||
		die "cannot write the measurement references"
fi
# The confidential guest's measurement reference: the endpoints' default blocks with the
# hash the TSM negotiates (SHA-384), where the firmware loader finds it.
if [ "$guest" = 1 ] && [ ${#ext[@]} -eq 0 ]; then
	mkdir -p "$work/cfg/lib/firmware/coco"
	"$COCO_ENDPOINT_BIN" --count 1 --measurements-reference sha384 \
		>"$work/cfg/lib/firmware/coco/measurements.ref" ||
		die "cannot write the guest's measurement reference"
fi
if [ "$mode" = cmd ]; then
	printf '%q ' "${cmd[@]}" >"$work/cfg/coco/cmd"
	echo >>"$work/cfg/coco/cmd"
fi
(cd "$work/cfg" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) >"$work/cfg.cpio"
cat "$work/base.cpio.gz" "$work/cfg.cpio" >"$work/initrd"

exec_rig=(python3 "$COCO_ROOT/scripts/rig.py" --kernel "$KB/arch/x86/boot/bzImage"
	--initrd "$work/initrd" --mode "$mode" --endpoints "$endpoints" --timeout "$timeout"
	--endpoint-bin "$COCO_ENDPOINT_BIN" "${ext[@]}" "${pki[@]}" "${variants[@]/#/--variant=}" "${logdir[@]}" "${verbose[@]}" "${qemu[@]}" "${psp_args[@]}")
"${exec_rig[@]}"
