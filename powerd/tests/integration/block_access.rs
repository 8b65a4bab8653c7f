//! Only the Pi's address reaches its export: a veth pair between the test's namespace (the
//! controller) and a second one (the Pi network) holding two addresses; the allowed one reads,
//! the other is refused even with the right export name.

use std::process::{Command, Output};

use powerd::block::{Block, BlockConfig, ExportRequest};
use powerd_client::provision::DiskFormat;

use crate::block::{Cleanup, base_image, private_netns, run, url};

const CONTROLLER: &str = "10.231.0.1";
const PI: &str = "10.231.0.2";
const OTHER: &str = "10.231.0.3";

/// The Pi side: a named namespace (so that `ip netns exec` reaches it), removed on drop.
struct PiNet(String);

impl PiNet {
    fn create() -> PiNet {
        let name = format!("pf-block-pi-{}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]));
        let net = PiNet(name);
        let n = net.0.as_str();
        run(Command::new("ip").args([
            "link", "add", "pfctl0", "type", "veth", "peer", "name", "pfpi0", "netns", n,
        ]));
        run(Command::new("ip").args(["addr", "add", &format!("{CONTROLLER}/24"), "dev", "pfctl0"]));
        run(Command::new("ip").args(["link", "set", "pfctl0", "up"]));
        for addr in [PI, OTHER] {
            run(Command::new("ip").args([
                "-n",
                n,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "pfpi0",
            ]));
        }
        run(Command::new("ip").args(["-n", n, "link", "set", "pfpi0", "up"]));
        run(Command::new("ip").args(["-n", n, "link", "set", "lo", "up"]));
        net
    }

    /// Connections to the controller leave from `src`.
    fn source(&self, src: &str) {
        let route = format!("{CONTROLLER}/32");
        run(Command::new("ip").args([
            "-n", &self.0, "route", "replace", &route, "dev", "pfpi0", "src", src,
        ]));
    }

    fn nbdinfo(&self, url: &str) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.0, "timeout", "20", "nbdinfo", url])
            .output()
            .unwrap()
    }
}

impl Drop for PiNet {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn only_the_pis_address_reaches_its_export() {
    private_netns();
    let pinet = PiNet::create();
    let dir = tempfile::tempdir().unwrap();
    let cfg = BlockConfig::new(
        dir.path().join("block"),
        CONTROLLER.parse().unwrap(),
        10810..=10830,
    );
    let block = Block::open(&cfg).unwrap();
    let _cleanup = Cleanup(&block);
    let mut exports = Vec::new();
    for (name, allow) in [("pi.img", PI), ("other.img", OTHER)] {
        let disk = dir.path().join(name);
        base_image(&disk, 1);
        exports.push(
            block
                .export(&ExportRequest {
                    file: disk,
                    format: DiskFormat::Raw,
                    allow: allow.parse().unwrap(),
                })
                .unwrap(),
        );
    }
    let (mine, theirs) = (&exports[0], &exports[1]);
    let served = |out: &Output| {
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).contains("export-size: 1048576")
    };
    let refused = |out: &Output| {
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("Connection refused")
    };

    for _ in 0..2 {
        pinet.source(PI);
        let out = pinet.nbdinfo(&url(mine));
        assert!(served(&out), "{out:?}");
        let out = pinet.nbdinfo(&url(theirs));
        assert!(refused(&out), "{out:?}");

        pinet.source(OTHER);
        let out = pinet.nbdinfo(&url(mine));
        assert!(
            refused(&out),
            "the right name from the wrong address was served: {out:?}"
        );
        let out = pinet.nbdinfo(&url(theirs));
        assert!(served(&out), "{out:?}");
    }

    // the rules live in powerd's own table, and leave with the export
    let table = run(Command::new("nft").args(["list", "table", "inet", "pifoundry"]));
    let text = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(text.contains(&format!("{PI} . {}", mine.port)), "{text}");
    block.unexport(&mine.name).unwrap();
    let table = run(Command::new("nft").args(["list", "table", "inet", "pifoundry"]));
    let text = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(!text.contains(&format!("{PI} . {}", mine.port)), "{text}");
    assert!(
        text.contains(&format!("{OTHER} . {}", theirs.port)),
        "{text}"
    );

    // a restarted powerd puts back rules that went missing, from its state
    run(Command::new("nft").args(["flush", "set", "inet", "pifoundry", "nbd_allow4"]));
    assert!(refused(&pinet.nbdinfo(&url(theirs))));
    std::mem::forget(_cleanup);
    drop(block);
    let block = Block::open(&cfg).unwrap();
    let _cleanup = Cleanup(&block);
    let out = pinet.nbdinfo(&url(theirs));
    assert!(served(&out), "{out:?}");
}
