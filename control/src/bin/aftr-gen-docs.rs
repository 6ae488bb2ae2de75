//! aftr-gen-docs DIR: writes the man pages (aftrd(8), aftrctl(8), aftr.conf(5)) and the
//! shell completions under DIR, from the clap definitions and the configuration
//! language's command tables (`control::docs`). Run by `scripts/build-deb.sh`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: aftr-gen-docs DIR");
        return ExitCode::from(2);
    };
    match control::docs::write_all(std::path::Path::new(&dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aftr-gen-docs: {dir}: {e}");
            ExitCode::from(1)
        }
    }
}
