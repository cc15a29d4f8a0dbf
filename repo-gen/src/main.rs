use clap::Parser;
use std::io::Write;

fn main() {
    let cli = ota_repo::cli::Cli::parse();
    if let Err(e) = ota_repo::run::run(cli) {
        // Every error's message already names the file or object and the cause.
        // Written without `eprintln!`, which panics on a closed stderr.
        let _ = writeln!(std::io::stderr(), "ota-repo: error: {e}");
        std::process::exit(1);
    }
}
