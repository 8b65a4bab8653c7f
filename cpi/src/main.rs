use std::io::{Read, Write};

fn main() {
    let mut input = Vec::new();
    let response = match std::io::stdin().read_to_end(&mut input) {
        Ok(_) => cpi::handle_raw(&input),
        Err(e) => cpi::protocol::Response::error(cpi::protocol::CpiError::cpi(format!(
            "reading the request from stdin: {e}"
        ))),
    };
    // stdout carries only the JSON response; the director ignores the exit code.
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &response).expect("writing the response to stdout");
    let _ = out.write_all(b"\n");
}
