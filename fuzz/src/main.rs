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
//! keeps each one fixed). It also replays `fuzz/corpus/TARGET/`, the inputs AFL++'s
//! coverage-guided engine found to reach new code (`scripts/fuzz-afl.sh`, `ota-fuzz-afl`), and
//! mutates them with the seeds: this engine has no coverage feedback of its own, but it runs
//! everywhere, in CI, in a bounded time, and is repeatable from `--seed`.
//!
//! ```text
//! cargo run --release -p ota-fuzz -- --seconds 60            # every target, 60 s in all
//! cargo run --release -p ota-fuzz -- --target uds --seconds 300 --seed 7
//! cargo run --release -p ota-fuzz -- --seconds 0             # seeds and corpus only, once
//! ```

use clap::Parser;
use ota_fuzz::mutate::{mutate, Rng};
use ota_fuzz::{fnv, targets, TARGETS};
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
    /// Inputs AFL++ found to reach new code (`scripts/fuzz-afl.sh`), replayed and mutated
    /// with the seeds: DIR/TARGET/*.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus"))]
    corpus: PathBuf,
    /// Write each chosen target's seed inputs to DIR/TARGET/ and exit (AFL++'s starting inputs).
    #[arg(long, value_name = "DIR")]
    write_seeds: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    let chosen = chosen_targets(&args);
    // Panics are findings, reported below: keep the default hook from printing each one.
    std::panic::set_hook(Box::new(|_| {}));
    let share = Duration::from_secs(args.seconds) / chosen.len().max(1) as u32;
    let mut findings = 0;
    if args.write_seeds.is_none() {
        println!(
            "| target | reads | seeds (regressions, AFL++ corpus) | executions | per second | findings |"
        );
        println!("|---|---|---|---|---|---|");
    }
    for name in chosen {
        let mut t = ota_fuzz::target(name, &args.sample).expect("a target the list names");
        if t.seeds.is_empty() {
            eprintln!("ota-fuzz: {name}: no seed inputs (is --sample right?)");
            std::process::exit(2);
        }
        if let Some(dir) = &args.write_seeds {
            write_seeds(&dir.join(name), &t.seeds);
            continue;
        }
        let regressions = targets::files_in(&args.regressions.join(name));
        let replayed = regressions.len();
        t.seeds.splice(0..0, regressions);
        let corpus = targets::files_in(&args.corpus.join(name));
        let found_by_afl = corpus.len();
        t.seeds.extend(corpus);
        let start = Instant::now();
        let (execs, found) = fuzz(&args, name, &mut t, share);
        let secs = start.elapsed().as_secs_f64();
        println!(
            "| {name} | {} | {} ({replayed}, {found_by_afl}) | {execs} | {:.0} | {found} |",
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

/// The targets to run, in the list's order: those named (an unknown name ends the run,
/// exit 2), or every target but the hidden `selftest`, which panics on some inputs to show
/// the harness reports findings.
fn chosen_targets(args: &Args) -> Vec<&'static str> {
    let all = TARGETS;
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
    all.into_iter()
        .chain(["selftest"])
        .filter(|t| {
            args.targets.iter().any(|a| a == t) || (args.targets.is_empty() && *t != "selftest")
        })
        .collect()
}

/// Run target `t`: its seeds first, then mutations of them (the PRNG seeded from `--seed`
/// and the target's name, so a run repeats) until its `share` of the time is spent. Each
/// input that panics is a finding, written to `--crashes`. Returns the executions and the
/// findings.
fn fuzz(args: &Args, name: &str, t: &mut targets::Target, share: Duration) -> (u64, u64) {
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
    (execs, found)
}

/// Each seed as a file named by its content (AFL++ wants a directory of starting inputs).
fn write_seeds(dir: &std::path::Path, seeds: &[Vec<u8>]) {
    let written = std::fs::create_dir_all(dir).and_then(|()| {
        seeds
            .iter()
            .try_for_each(|s| std::fs::write(dir.join(format!("seed-{:016x}", fnv(s))), s))
    });
    if let Err(e) = written {
        eprintln!("ota-fuzz: writing seeds to {}: {e}", dir.display());
        std::process::exit(2);
    }
}
