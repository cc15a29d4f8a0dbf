use clap::Parser;

fn main() {
    let cli = ota_repo::cli::Cli::parse();
    if let Err(e) = ota_repo::run::run(cli) {
        // Every error's message already names the file or object and the cause.
        eprintln!("ota-repo: error: {e}");
        std::process::exit(1);
    }
}
