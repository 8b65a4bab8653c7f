//! Representative failures of the `powerd` executable: the whole stderr line — one line,
//! naming the file, key or URL, each cause once — and a failing exit status.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_powerd");

fn fails(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("POWERD_TOKEN")
        .env_remove("POWERD_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    err.trim_end().to_string()
}

#[test]
fn check_config_names_the_file_and_the_key() {
    assert_eq!(
        fails(&["check-config", "--config", "/nonexistent/powerd.yml"]),
        "powerd: /nonexistent/powerd.yml: No such file or directory (os error 2)"
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("powerd.yml");
    std::fs::write(&cfg, "outlets:\n  - {id: 'node 1', backend: sim}\n").unwrap();
    assert_eq!(
        fails(&["check-config", "--config", cfg.to_str().unwrap()]),
        format!(
            "powerd: {}: outlets[0].id: \"node 1\" is not a valid outlet id (1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit)",
            cfg.display()
        )
    );
}

#[test]
fn ctl_names_the_url_and_what_went_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "ops:ctl-token-0123456789\n").unwrap();
    let tokens = tokens.to_str().unwrap();
    assert_eq!(
        fails(&["ctl", "--url", "ftp://pi", "--token-file", tokens, "list"]),
        "powerd: \"ftp://pi\" is not an http:// URL"
    );
    // a loopback port that was just free: nothing listens there
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    assert_eq!(
        fails(&["ctl", "--url", &url, "--token-file", tokens, "list"]),
        format!(
            "powerd: {url}/v1/outlets: client error (Connect): tcp connect error: Connection refused (os error 111)"
        )
    );
    assert_eq!(
        fails(&[
            "ctl",
            "--url",
            &url,
            "--token-file",
            "/nonexistent/tokens",
            "list"
        ]),
        "powerd: /nonexistent/tokens: No such file or directory (os error 2)"
    );
}
