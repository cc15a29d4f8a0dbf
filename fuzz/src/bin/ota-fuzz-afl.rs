//! `ota-fuzz-afl TARGET`: one of `ota-fuzz`'s targets under AFL++ (coverage-guided, through
//! `cargo afl` on the stable toolchain). Built and run by `scripts/fuzz-afl.sh`, which keeps
//! the corpus AFL++ grows in `fuzz/corpus/TARGET/`; `ota-fuzz` replays that corpus on every
//! run, so CI keeps each input AFL++ found to reach new code.

use std::panic::AssertUnwindSafe;
use std::path::Path;

fn main() {
    let Some(name) = std::env::args().nth(1) else {
        eprintln!(
            "usage: ota-fuzz-afl TARGET   (one of {})",
            ota_fuzz::TARGETS.join(", ")
        );
        std::process::exit(2);
    };
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sample-repo");
    let Some(t) = ota_fuzz::target(&name, &sample) else {
        eprintln!(
            "ota-fuzz-afl: no target {name:?}; the targets are {}",
            ota_fuzz::TARGETS.join(", ")
        );
        std::process::exit(2);
    };
    // The target's state (keys, a bootloader) is built once, outside the persistent loop; a
    // panic inside aborts the process, which AFL++ records as a crash.
    let max_len = t.max_len;
    let mut run = AssertUnwindSafe(t.run);
    afl::fuzz(true, move |data: &[u8]| {
        // The whole wrapper is captured (not its field, as edition 2021 would), so the
        // closure is unwind-safe as AFL++'s panic hook needs.
        let AssertUnwindSafe(run) = &mut run;
        // Inputs longer than the shipped code accepts are cut, as `ota-fuzz` cuts them.
        run(&data[..data.len().min(max_len)]);
    });
}
