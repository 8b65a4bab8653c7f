use std::io::{Read, Write};
use std::path::Path;

fn main() {
    let config = std::env::args_os().nth(1);
    let mut input = Vec::new();
    let response = match std::io::stdin().read_to_end(&mut input) {
        Ok(_) => match &config {
            Some(path) => cpi::handle_file(&input, Path::new(path)),
            None => cpi::handle_raw(&input),
        },
        Err(e) => cpi::protocol::Response::error(cpi::protocol::CpiError::cpi(format!(
            "reading the request from stdin: {e}"
        ))),
    };
    if let Some(e) = &response.error {
        cpi::log(&format!("{}: {}", e.kind, e.message));
    }
    // stdout carries only the JSON response; the director ignores the exit code.
    let mut out = std::io::stdout().lock();
    if serde_json::to_writer(&mut out, &response).is_err() || out.write_all(b"\n").is_err() {
        std::process::exit(1);
    }
}
