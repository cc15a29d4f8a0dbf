//! `ota-ecu-image`: the image a supplier publishes for a microcontroller, from the linker's ELF
//! (as `objcopy -O binary`: every loadable segment at its load address, gaps erased). Prints
//! the load address and length.
//!
//! ```text
//! ota-ecu-image target/thumbv7em-none-eabihf/firmware/ecu-app-confirms brake-app-1.0.bin
//! ```
//! An existing output file is replaced only whole (written beside it, then renamed).

use std::path::Path;
use std::process::ExitCode;

const USAGE: &str = "usage: ota-ecu-image ELF OUT\n\nWrite the loadable segments of the ELF executable ELF to OUT as one image, from the lowest load address up (gaps 0xFF), as a bootloader loads it.";

fn run(args: &[String]) -> Result<String, String> {
    let [elf, out] = args else {
        return Err(USAGE.into());
    };
    if elf == "-h" || elf == "--help" {
        return Err(USAGE.into());
    }
    let bytes = std::fs::read(elf).map_err(|e| format!("{elf}: {e}"))?;
    let (base, image) = ota_ecu::elf::image(&bytes).map_err(|e| format!("{elf}: {e}"))?;
    let out = Path::new(out);
    let tmp = out.with_extension("part");
    std::fs::write(&tmp, &image)
        .and_then(|()| std::fs::rename(&tmp, out))
        .map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(format!(
        "{}: {} bytes to load at {base:#010x}",
        out.display(),
        image.len()
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ota-ecu-image: {e}");
            ExitCode::from(2)
        }
    }
}
