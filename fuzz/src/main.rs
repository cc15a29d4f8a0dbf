//! `ota-fuzz`: a fuzzer for every parser that reads untrusted bytes, on the stable toolchain
//! (cargo-fuzz needs nightly, which this project's machines do not have).
//!
//! Each target starts from seed inputs (the sample trees in `sample-repo/`, compact manifests
//! and UDS requests and ECU trust documents signed by keys made for the run, hand-made ISO-TP frame sequences, the
//! documented gateway configuration) and runs mutations of them (bit flips, random and
//! interesting bytes, insertions, deletions, duplications, splices, JSON and TOML tokens) for
//! its share of the time budget. A panic is a finding: the input is written to
//! `--crashes DIR` and the run exits non-zero. Once fixed, a finding's input goes to
//! `fuzz/regressions/TARGET/`, which every run replays before anything else (so `.ci/run`
//! keeps each one fixed). Without coverage feedback this finds less than libFuzzer would, but
//! it runs everywhere, in CI, in a bounded time, and is repeatable from `--seed`.
//!
//! ```text
//! cargo run --release -p ota-fuzz -- --seconds 60            # every target, 60 s in all
//! cargo run --release -p ota-fuzz -- --target uds --seconds 300 --seed 7
//! ```

mod mutate;
mod targets;

use clap::Parser;
use mutate::{mutate, Rng};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Fuzz every parser of untrusted bytes for a bounded time"
)]
struct Args {
    /// Time budget for the whole run, in seconds, shared equally by the targets.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Only these targets (repeatable): metadata, compact-manifest, isotp, uds, ecu-trust,
    /// gateway-config, image-crypt, serial-line, elf, delta.
    #[arg(long = "target", value_name = "NAME")]
    targets: Vec<String>,
    /// PRNG seed: the same seed and budget give the same inputs.
    #[arg(long, default_value_t = 0x5eed)]
    seed: u64,
    /// The sample trees to take seed inputs from.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../sample-repo"))]
    sample: PathBuf,
    /// Where inputs that panicked are written.
    #[arg(long, default_value = "target/fuzz-crashes")]
    crashes: PathBuf,
    /// Inputs of fixed findings, replayed first: DIR/TARGET/*.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/regressions"))]
    regressions: PathBuf,
}

fn main() {
    let args = Args::parse();
    let all = [
        "metadata",
        "compact-manifest",
        "isotp",
        "uds",
        "ecu-trust",
        "gateway-config",
        "image-crypt",
        "serial-line",
        "elf",
        "delta",
    ];
    // `selftest` (hidden) panics on some inputs: it shows the harness reports findings.
    if let Some(t) = args
        .targets
        .iter()
        .find(|t| !all.contains(&t.as_str()) && *t != "selftest")
    {
        eprintln!(
            "ota-fuzz: no target {t:?}; the targets are {}",
            all.join(", ")
        );
        std::process::exit(2);
    }
    let chosen: Vec<&str> = all
        .into_iter()
        .chain(["selftest"])
        .filter(|t| {
            args.targets.iter().any(|a| a == t) || (args.targets.is_empty() && *t != "selftest")
        })
        .collect();
    // Panics are findings, reported below: keep the default hook from printing each one.
    std::panic::set_hook(Box::new(|_| {}));
    let share = Duration::from_secs(args.seconds) / chosen.len().max(1) as u32;
    let mut findings = 0;
    println!("| target | reads | seeds (regressions) | executions | per second | findings |");
    println!("|---|---|---|---|---|---|");
    for name in chosen {
        let mut t = match name {
            "metadata" => targets::metadata(&args.sample),
            "compact-manifest" => targets::compact_manifest(&args.sample),
            "isotp" => targets::isotp(),
            "uds" => targets::uds(),
            "gateway-config" => targets::gateway_config(),
            "ecu-trust" => targets::ecu_trust(),
            "image-crypt" => targets::image_crypt(),
            "serial-line" => targets::serial_line(),
            "elf" => targets::elf(),
            "delta" => targets::delta(),
            _ => targets::selftest(),
        };
        let regressions = targets::files_in(&args.regressions.join(name));
        let replayed = regressions.len();
        t.seeds.splice(0..0, regressions);
        if t.seeds.is_empty() {
            eprintln!("ota-fuzz: {name}: no seed inputs (is --sample right?)");
            std::process::exit(2);
        }
        let mut rng = Rng::new(args.seed ^ fnv(name.as_bytes()));
        let start = Instant::now();
        let (mut execs, mut found) = (0u64, 0u64);
        // The seeds themselves first, then mutations.
        let mut i = 0;
        while i < t.seeds.len() || start.elapsed() < share {
            let input = if i < t.seeds.len() {
                t.seeds[i].clone()
            } else {
                let a = &t.seeds[rng.below(t.seeds.len())];
                let b = &t.seeds[rng.below(t.seeds.len())];
                mutate(&mut rng, a, b, t.max_len)
            };
            i += 1;
            execs += 1;
            let run = &mut t.run;
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&input))).is_err() {
                found += 1;
                let _ = std::fs::create_dir_all(&args.crashes);
                let file = args
                    .crashes
                    .join(format!("{name}-{:016x}.bin", fnv(&input)));
                let _ = std::fs::write(&file, &input);
                eprintln!(
                    "ota-fuzz: {name}: a panic, input written to {}",
                    file.display()
                );
            }
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "| {name} | {} | {} ({replayed}) | {execs} | {:.0} | {found} |",
            t.what,
            t.seeds.len(),
            execs as f64 / secs.max(1e-9)
        );
        findings += found;
    }
    if findings > 0 {
        eprintln!("ota-fuzz: {findings} finding(s)");
        std::process::exit(1);
    }
}

/// FNV-1a: names a finding by its content.
fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
    })
}
