//! Network namespaces a test creates (and deletes on drop), sockets bound inside them, and
//! commands run inside them. Needs root, as CI runs the tests.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

pub fn require(tool: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()));
    assert!(
        found,
        "`{tool}` not found: install the test prerequisites (scripts/install-prereqs.sh test)"
    );
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A new namespace with its loopback up.
    pub fn new(tag: &str) -> Netns {
        assert!(
            nix::unistd::geteuid().is_root(),
            "network namespace tests need root (CI runs as root)"
        );
        require("ip");
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("pf-{tag}-{}-{n}", std::process::id());
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// A veth pair between two namespaces: `(here_name, there_name)`, both up, without addresses.
    pub fn veth_to(&self, other: &Netns, here: &str, there: &str) {
        ip(&[
            "link",
            "add",
            here,
            "netns",
            &self.name,
            "type",
            "veth",
            "peer",
            "name",
            there,
            "netns",
            &other.name,
        ]);
        self.ip(&["link", "set", here, "up"]);
        other.ip(&["link", "set", there, "up"]);
    }

    /// `command` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program).args(args).output().unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // processes a test left inside die with it (dnsmasq is killed by its own guard)
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
