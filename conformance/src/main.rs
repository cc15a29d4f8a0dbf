//! `ota-tuf-conformance`: see [`ota_conformance::cli`].

fn main() {
    std::process::exit(ota_conformance::cli::main_with_args(std::env::args_os()));
}
