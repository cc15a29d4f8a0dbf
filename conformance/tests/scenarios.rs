//! The scenario table of `conformance/README.md`, generated from the test suite itself: every
//! test that mounts an attack carries a `/// Scenario: AREA | ATTACK | EXPECTED OUTCOME` line,
//! and this test collects them (from every crate's `tests/` and `src/`) into the table. It
//! fails when the README's table differs from the suite (a test renamed, removed or added), or
//! when an area of the threat model has no test; `OTA_BLESS=1 cargo test -p ota-conformance
//! --test scenarios` rewrites the table. The annotated tests themselves run in the same suite,
//! so every row is a test that passed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The areas the threat model must cover, in the table's order.
const AREAS: &[&str] = &[
    "Rollback",
    "Freeze",
    "Mix-and-match",
    "Arbitrary software",
    "Thresholds",
    "Root rotation",
    "Endless data",
    "Slow retrieval",
    "Delegations",
    "Target names",
    "Uptane hardware id",
    "Uptane ECU serial",
    "Uptane VIN",
    "Uptane release counter",
    "Regulators",
    "Suppliers",
    "Stolen keys",
    "Partial updates",
    "Power loss",
    "Confidentiality",
    "CDN publishing",
    "Fleet privacy",
    "Supply chain",
    "Fleet backend",
    "ECU trial boot",
    "Deltas",
];

const CRATES: &[&str] = &[
    "metadata",
    "repo-gen",
    "client",
    "ecu",
    "conformance",
    "fuzz",
    "crypt",
    "fleet",
];
const BEGIN: &str = "<!-- scenarios:begin -->";
const END: &str = "<!-- scenarios:end -->";

struct Row {
    area: String,
    attack: String,
    outcome: String,
    file: String,
    test: String,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The annotated tests of one file: each annotation must sit in the doc comment of a `#[test]`.
fn scenarios(root: &Path, path: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let file = path
        .strip_prefix(root)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut rows = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(rest) = l.trim().strip_prefix("/// Scenario: ") else {
            continue;
        };
        let parts: Vec<&str> = rest.split(" | ").collect();
        assert_eq!(parts.len(), 3, "{file}:{}: AREA | ATTACK | OUTCOME", i + 1);
        assert!(
            AREAS.contains(&parts[0]),
            "{file}:{}: unknown area {:?} (one of {AREAS:?})",
            i + 1,
            parts[0]
        );
        // Down through the doc comment and attributes to the function.
        let mut is_test = false;
        let mut name = None;
        for next in &lines[i + 1..] {
            let t = next.trim();
            if t.starts_with("///") {
                continue;
            }
            if t == "#[test]" {
                is_test = true;
                continue;
            }
            if t.starts_with("#[") {
                continue;
            }
            name = t
                .strip_prefix("fn ")
                .or_else(|| t.strip_prefix("pub fn "))
                .and_then(|s| s.split('(').next())
                .map(str::to_string);
            break;
        }
        let test = name.unwrap_or_else(|| panic!("{file}:{}: no function follows", i + 1));
        assert!(is_test, "{file}:{}: {test} is not a #[test]", i + 1);
        rows.push(Row {
            area: parts[0].into(),
            attack: parts[1].into(),
            outcome: parts[2].into(),
            file: file.clone(),
            test,
        });
    }
    rows
}

fn table(rows: &[Row]) -> String {
    let mut s =
        format!("{BEGIN}\n| area | attack | expected outcome | test |\n|---|---|---|---|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | `{}` `{}` |\n",
            r.area, r.attack, r.outcome, r.file, r.test
        ));
    }
    s.push_str(END);
    s
}

#[test]
fn the_scenario_table_is_the_suites() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = root.canonicalize().unwrap();
    let mut files = Vec::new();
    for c in CRATES {
        rust_files(&root.join(c).join("tests"), &mut files);
        rust_files(&root.join(c).join("src"), &mut files);
    }
    files.sort();
    let mut rows: Vec<Row> = files.iter().flat_map(|f| scenarios(&root, f)).collect();
    let order: BTreeMap<&str, usize> = AREAS.iter().enumerate().map(|(i, a)| (*a, i)).collect();
    rows.sort_by(|a, b| {
        (order[a.area.as_str()], &a.file, &a.test).cmp(&(order[b.area.as_str()], &b.file, &b.test))
    });
    let missing: Vec<&&str> = AREAS
        .iter()
        .filter(|a| !rows.iter().any(|r| r.area == **a))
        .collect();
    assert!(missing.is_empty(), "areas without a test: {missing:?}");

    let readme = root.join("conformance/README.md");
    let text = std::fs::read_to_string(&readme).unwrap();
    let (Some(b), Some(e)) = (text.find(BEGIN), text.find(END)) else {
        panic!("{} has no {BEGIN} ... {END} section", readme.display());
    };
    let want = table(&rows);
    let have = &text[b..e + END.len()];
    if have != want {
        if std::env::var_os("OTA_BLESS").is_some() {
            let new = format!("{}{}{}", &text[..b], want, &text[e + END.len()..]);
            std::fs::write(&readme, new).unwrap();
        } else {
            panic!(
                "conformance/README.md's scenario table differs from the suite's {} annotated \
                 tests; rewrite it with `OTA_BLESS=1 cargo test -p ota-conformance --test \
                 scenarios`",
                rows.len()
            );
        }
    }
}
