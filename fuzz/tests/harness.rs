//! The fuzzer reports what it finds: a target with a planted bug makes it exit 1 and write
//! the input; the real targets run their seeds and regressions without a finding.

use std::process::Command;

#[test]
fn a_planted_panic_is_found_and_its_input_kept() {
    let crashes = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ota-fuzz"))
        .args(["--target", "selftest", "--seconds", "2"])
        .arg("--crashes")
        .arg(crashes.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let kept: Vec<_> = std::fs::read_dir(crashes.path())
        .unwrap()
        .flatten()
        .collect();
    assert!(!kept.is_empty());
    for k in kept {
        assert_eq!(std::fs::read(k.path()).unwrap().first(), Some(&0xFF));
    }
}

#[test]
fn every_target_runs_its_seeds_without_a_finding() {
    let out = Command::new(env!("CARGO_BIN_EXE_ota-fuzz"))
        .args(["--seconds", "1"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{table}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every target the fuzzer knows (as it lists them when asked for an unknown one), not a
    // list kept here that a new target could be missing from.
    let listing = Command::new(env!("CARGO_BIN_EXE_ota-fuzz"))
        .args(["--target", "nope", "--seconds", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&listing.stderr);
    let names: Vec<&str> = err
        .split("the targets are ")
        .nth(1)
        .expect("the fuzzer lists its targets")
        .trim()
        .split(", ")
        .collect();
    assert!(names.len() >= 7, "{names:?}");
    for t in names {
        assert!(
            table.contains(&format!("| {t} |")),
            "{t} did not run:\n{table}"
        );
    }
}

#[test]
fn an_unknown_target_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_ota-fuzz"))
        .args(["--target", "nope", "--seconds", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the targets are"));
}

/// The `delta` row of a `--seconds 0` run: (seeds in all, regressions, corpus inputs,
/// executions).
fn delta_row(args: &[&std::ffi::OsStr]) -> (u64, u64, u64, u64) {
    let out = Command::new(env!("CARGO_BIN_EXE_ota-fuzz"))
        .args(["--target", "delta", "--seconds", "0"])
        .args(args)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with("| delta |"))
        .expect("a row for delta");
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    // | delta | reads | seeds (regressions, corpus) | executions | ...
    let n: Vec<u64> = cells[3]
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(n.len(), 3, "{row}");
    (n[0], n[1], n[2], cells[4].parse().unwrap())
}

#[test]
fn the_afl_corpus_and_the_regressions_are_replayed_with_the_seeds() {
    // Inputs in CORPUS/TARGET/ and REGRESSIONS/TARGET/ run before any mutation, counted in
    // the table's seeds column.
    let corpus = tempfile::tempdir().unwrap();
    std::fs::create_dir(corpus.path().join("delta")).unwrap();
    std::fs::write(corpus.path().join("delta/one"), b"OTAZ\x01\x08\x07\x00").unwrap();
    std::fs::write(corpus.path().join("delta/two"), b"OTAD").unwrap();
    let regressions = tempfile::tempdir().unwrap();
    std::fs::create_dir(regressions.path().join("delta")).unwrap();
    std::fs::write(regressions.path().join("delta/finding-1"), b"OTAD\xff").unwrap();
    let (seeds, replayed, from_corpus, executions) = delta_row(&[
        "--corpus".as_ref(),
        corpus.path().as_os_str(),
        "--regressions".as_ref(),
        regressions.path().as_os_str(),
    ]);
    assert_eq!((replayed, from_corpus), (1, 2));
    assert!(seeds > 3, "the built-in seeds as well: {seeds}");
    assert_eq!(
        executions, seeds,
        "--seconds 0 runs each seed, regression and corpus input once"
    );
}

#[test]
fn by_default_the_repositorys_corpus_is_replayed() {
    // What CI runs: no --corpus, so fuzz/corpus/TARGET/ (AFL++'s minimized corpus).
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/delta");
    let files = std::fs::read_dir(dir).unwrap().count() as u64;
    assert!(files > 0, "{dir} is empty");
    let (_, _, from_corpus, _) = delta_row(&[]);
    assert_eq!(from_corpus, files);
}

#[test]
fn the_seeds_are_written_for_afl() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ota-fuzz"))
        .args([
            "--target",
            "compact-manifest",
            "--target",
            "delta",
            "--write-seeds",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    for t in ["compact-manifest", "delta"] {
        let written = std::fs::read_dir(dir.path().join(t)).unwrap().count();
        assert!(written >= 3, "{t}: {written} seed file(s)");
    }
    assert!(!dir.path().join("uds").exists(), "only the chosen targets");
}
