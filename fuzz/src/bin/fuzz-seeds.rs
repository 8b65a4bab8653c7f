//! `fuzz-seeds TARGET DIR`: writes TARGET's seed inputs into DIR (used by scripts/fuzz.sh).
//! `fuzz-seeds --list` prints every target name.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag] if flag == "--list" => {
            for t in pifoundry_fuzz::TARGETS {
                println!("{}", t.name);
            }
            ExitCode::SUCCESS
        }
        [target, dir] => {
            let src = pifoundry_fuzz::seeds::Sources::discover();
            match pifoundry_fuzz::seeds::write(target, &src, std::path::Path::new(dir)) {
                Ok(n) => {
                    println!("{n}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("fuzz-seeds: {target}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!("usage: fuzz-seeds TARGET DIR | fuzz-seeds --list");
            ExitCode::from(2)
        }
    }
}
