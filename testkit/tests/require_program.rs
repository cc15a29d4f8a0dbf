//! `require_program`, which every test needing an external program calls: with `CI` set a
//! missing program fails the test (so a green CI run means every test ran); without it the
//! test is skipped with a notice naming the program and its package.

use std::process::Command;

const PROBE: &str = "OTA_TESTKIT_REQUIRE_PROBE";
const NAME: &str = "a_missing_program_fails_under_ci_and_is_skipped_with_a_notice_otherwise";

#[test]
fn a_missing_program_fails_under_ci_and_is_skipped_with_a_notice_otherwise() {
    if std::env::var_os(PROBE).is_some() {
        // The child: ask for a program no machine has.
        let found = ota_testkit::require_program("ota-no-such-program", "no-such-package");
        assert!(found.is_none());
        return;
    }
    // This test binary again, running only this test as the child (a child process, because
    // CI must be set or unset for the call without touching this process's environment).
    let run = |ci: bool| {
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.args([NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(PROBE, "1");
        if ci {
            c.env("CI", "true");
        } else {
            c.env_remove("CI");
        }
        let out = c.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (passed, text) = run(true);
    assert!(
        !passed,
        "under CI a missing program must fail the test:\n{text}"
    );
    assert!(
        text.contains("`ota-no-such-program` is not installed (Debian package no-such-package")
            && text.contains("CI is set, so this test may not be skipped"),
        "{text}"
    );
    let (passed, text) = run(false);
    assert!(passed, "{text}");
    assert!(
        text.contains("NOTICE: skipping: `ota-no-such-program` is not installed"),
        "{text}"
    );
}

#[test]
fn an_installed_program_is_found_on_the_path() {
    let sh = ota_testkit::require_program("sh", "dash").expect("sh is on every machine");
    assert!(sh.ends_with("sh"), "{}", sh.display());
}
