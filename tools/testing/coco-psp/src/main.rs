//! `coco-psp`: the emulated PSP firmware (SEV-TIO) for QEMU's `coco-psp` device. Listens on an
//! ephemeral localhost port, writes it to `--port-file`, serves one QEMU connection.

use std::fs;
use std::io::{self, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use coco_psp::psp::{serve, Psp};
use coco_psp::{FaultSpec, Logger, FAULT_HELP};

#[derive(Parser, Debug)]
#[command(
    name = "coco-psp",
    about = "Emulated AMD PSP firmware (SEV-TIO) for QEMU's coco-psp and coco-tio-guest devices",
    after_help = format!("Faults (--fault, repeatable):\n{FAULT_HELP}\n\nThe contracts: Documentation/coco/sev-tio-platform.rst, Documentation/coco/sev-tio-guest.rst")
)]
struct Args {
    /// Write the listening port here (to a temporary file, then renamed)
    #[arg(long, value_name = "FILE")]
    port_file: PathBuf,
    /// Log to FILE (appending) instead of stderr
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Inject a fault (see below); repeatable
    #[arg(long, value_name = "F")]
    fault: Vec<FaultSpec>,
    /// A function assigned to the guest (its TDI served over the guest channel); repeatable
    #[arg(long, value_name = "BB:DD.F", value_parser = coco_psp::parse_rid)]
    guest_tdi: Vec<u16>,
}

/// Writes `port` to `path` atomically: a temporary file in the same directory, then rename.
fn write_port_file(path: &Path, port: u16) -> io::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(format!("{port}\n").as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn main() -> ExitCode {
    let args = Args::parse();
    let log = match &args.log {
        None => Logger::new(Box::new(io::stderr())),
        Some(p) => match fs::OpenOptions::new().create(true).append(true).open(p) {
            Ok(f) => Logger::new(Box::new(f)),
            Err(e) => {
                eprintln!("coco-psp: cannot open log {}: {e}", p.display());
                return ExitCode::FAILURE;
            }
        },
    };
    let listener = match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)) {
        Ok(l) => l,
        Err(e) => {
            log.line(&format!("cannot listen: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let port = match listener.local_addr() {
        Ok(a) => a.port(),
        Err(e) => {
            log.line(&format!("cannot read the listening address: {e}"));
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = write_port_file(&args.port_file, port) {
        log.line(&format!(
            "cannot write port file {}: {e}",
            args.port_file.display()
        ));
        return ExitCode::FAILURE;
    }
    let faults: Vec<String> = args.fault.iter().map(FaultSpec::to_string).collect();
    log.line(&format!(
        "listening on 127.0.0.1:{port}{}",
        if faults.is_empty() {
            String::new()
        } else {
            format!(", faults: {}", faults.join(" "))
        }
    ));
    let stream = match listener.accept() {
        Ok((s, peer)) => {
            log.line(&format!("QEMU connected from {peer}"));
            s
        }
        Err(e) => {
            log.line(&format!("accept failed: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let mut psp = Psp::new(args.fault, log.clone());
    psp.set_guest_tdis(&args.guest_tdi);
    if !args.guest_tdi.is_empty() {
        let tdis: Vec<String> = args
            .guest_tdi
            .iter()
            .map(|r| coco_psp::bdf(0, *r))
            .collect();
        log.line(&format!("guest TDIs: {}", tdis.join(" ")));
    }
    match serve(stream, &mut psp, &log) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log.line(&format!("protocol broken, stopping: {e}"));
            ExitCode::FAILURE
        }
    }
}
