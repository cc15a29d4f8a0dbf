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

#[test]
fn the_afl_corpus_is_replayed_with_the_seeds() {
    // An input in DIR/TARGET/ runs before any mutation, counted in the table's corpus column.
    let corpus = tempfile::tempdir().unwrap();
    std::fs::create_dir(corpus.path().join("delta")).unwrap();
    std::fs::write(corpus.path().join("delta/one"), b"OTAZ\x01\x08\x07\x00").unwrap();
    std::fs::write(corpus.path().join("delta/two"), b"OTAD").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ota-fuzz"))
        .args(["--target", "delta", "--seconds", "0", "--corpus"])
        .arg(corpus.path())
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
    assert!(cells[3].ends_with(", 2)"), "{row}");
    let seeds: u64 = cells[3].split(' ').next().unwrap().parse().unwrap();
    let executions: u64 = cells[4].parse().unwrap();
    assert_eq!(
        executions, seeds,
        "--seconds 0 runs each seed and corpus input once: {row}"
    );
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
