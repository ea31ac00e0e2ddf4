//! `coco-verify`: re-verifies a PCIe device's signed SPDM measurements from its sysfs
//! evidence. See the library documentation (`coco_verify`) for what is checked.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Re-verify a PCIe device's signed SPDM measurements from the evidence the kernel exports,
/// without trusting the kernel.
///
/// Checks the certificate chain of the reading's slot (D/certificates/slot<N>), the
/// MEASUREMENTS signature over D/measurements/transcript with the leaf key, the transcript's
/// messages (nonce, slot, a single signed request at its end), that the signed blocks equal
/// the D/measurements/<index>_{type,format,value} files exactly and, optionally, a reference
/// file and a trust anchor.
///
/// Exit status: 0 verified, 1 verification failure or mismatch, 2 usage or I/O error.
#[derive(Debug, Parser)]
#[command(name = "coco-verify", version, verbatim_doc_comment)]
struct Cli {
    /// PCI device directory, e.g. /sys/bus/pci/devices/0000:01:00.0
    #[arg(long, short = 'd', value_name = "DIR")]
    device: PathBuf,

    /// Reference measurements: one block per line, "INDEX TYPE digest|raw HEX"; TYPE a name
    /// (immutable_rom, mutable_firmware, ..., type_N) or a number 0-127; '#' starts a comment
    #[arg(long, short = 'r', value_name = "FILE")]
    reference: Option<PathBuf>,

    /// Root certificate (DER or PEM) the chain must start with or be signed by
    #[arg(long, short = 't', value_name = "CERT")]
    trust_anchor: Option<PathBuf>,

    /// Accept a reading the kernel marks stale (measurements/stale = 1)
    #[arg(long)]
    allow_stale: bool,

    /// After OK, print the verified blocks in the reference file format
    #[arg(long, short = 'v')]
    verbose: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = coco_verify::run(&coco_verify::Options {
        device: cli.device,
        reference: cli.reference,
        trust_anchor: cli.trust_anchor,
        allow_stale: cli.allow_stale,
        verbose: cli.verbose,
    });
    for line in &out.lines {
        if out.code == coco_verify::EXIT_USAGE {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    ExitCode::from(u8::try_from(out.code).unwrap_or(2))
}
