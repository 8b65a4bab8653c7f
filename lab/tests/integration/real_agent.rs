//! By hand only: a stemcell baked with the **real bosh-agent** (the default recipe, or one
//! that builds bosh-agent from a local checkout) netboots on the lab, and its agent answers
//! `ping` and `get_state` on its mbus from the controller's namespace, with root and
//! ephemeral disk over NBD, before and after a power cycle. CI cannot fetch bosh-agent, so
//! this test is ignored there:
//!
//! ```text
//! PIFOUNDRY_LAB_BAKE_DIR=out cargo nextest run -p pifoundry-lab --run-ignored only \
//!     -E 'test(/real_agent/)' --no-capture
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use baker::bootcheck::agent::Mbus;
use baker::bootcheck::settings::{MBUS_PORT, MbusCert, random_hex, settings};
use pifoundry_lab::layout::Lab;
use pifoundry_lab::power::{self, POWER_ON_FAILED};
use pifoundry_lab::{Console, netns, up::with_client};
use serde_json::{Value, json};

use crate::support::{TestLab, create_body};

const BOOT: Duration = Duration::from_secs(1800);
const PROBE: Duration = Duration::from_secs(15);

/// Probes `ping` until the agent answers; fails early on a panic or a failed power-on.
fn answers_ping(lab: &Lab, console: &mut Console, addr: SocketAddr, pw: &str, ca: &str) -> f64 {
    let (pw, ca) = (pw.to_owned(), ca.to_owned());
    loop {
        let pong = netns::within(&lab.netns, || {
            Ok(Mbus::at(addr, &pw, &ca)?.call_within("ping", json!([]), PROBE)?)
        })
        .unwrap_or_else(|e| panic!("{e:#}"));
        if pong == Some(json!("pong")) {
            return console.elapsed();
        }
        console.refresh();
        for fatal in ["Kernel panic", POWER_ON_FAILED] {
            assert!(
                !console.text().contains(fatal),
                "{fatal}; console ended with:\n{}",
                console.tail()
            );
        }
        assert!(
            console.elapsed() < BOOT.as_secs_f64(),
            "no pong from {addr} in {} s (stage {}); console ended with:\n{}",
            BOOT.as_secs(),
            console.stage(),
            console.tail()
        );
        std::thread::sleep(Duration::from_secs(5));
    }
}

fn call(lab: &Lab, addr: SocketAddr, pw: &str, ca: &str, method: &str, args: Value) -> Value {
    let (pw, ca) = (pw.to_owned(), ca.to_owned());
    netns::within(&lab.netns, || {
        Ok(Mbus::at(addr, &pw, &ca)?.call(method, args)?)
    })
    .unwrap_or_else(|e| panic!("{e:#}"))
    .unwrap_or_else(|| panic!("{method}: no answer from {addr}"))
}

#[test]
#[ignore = "needs a stemcell baked with the real bosh-agent (PIFOUNDRY_LAB_BAKE_DIR), which CI cannot fetch"]
fn real_agent_netboots_and_answers_its_mbus_across_a_power_cycle() {
    let dir = PathBuf::from(
        std::env::var_os("PIFOUNDRY_LAB_BAKE_DIR")
            .expect("PIFOUNDRY_LAB_BAKE_DIR: a bake directory whose stemcell has the real agent"),
    );
    let t = TestLab::up(1, Some(&dir.join("root.img")));
    let lab = t.lab.clone();
    let image = lab.image.clone().unwrap();
    let cert = MbusCert::generate().unwrap();
    let pw = random_hex().unwrap();
    let agent = "real-agent-lab-1";
    let mut s = settings(agent, &pw, &cert, "/dev/nbd1");
    // the netboot's disk layout, as the CPI sends it
    s["disks"]["system"] = json!("/dev/nbd0");
    let body = create_body(&image, agent, 1024, s);
    let vm = with_client(&lab, |c| Ok(c.create_vm(&body)?)).unwrap();
    let addr = SocketAddr::new(vm.address.parse().unwrap(), MBUS_PORT);

    for boot in 1..=2 {
        let mut console = Console::follow(&lab.console_log(&vm.pi));
        let secs = answers_ping(&lab, &mut console, addr, &pw, &cert.ca);
        let bytes = power::nbd_bytes(&lab, &vm.pi).unwrap();
        eprintln!(
            "figure: real agent, netboot {boot}: ping after {secs:.0} s, {bytes} bytes from its exports by then"
        );
        let state = call(&lab, addr, &pw, &cert.ca, "get_state", json!([]));
        assert_eq!(state["agent_id"], agent, "{state}");
        eprintln!(
            "get_state: job_state={} vm={}",
            state["job_state"], state["vm"]
        );
        if boot == 1 {
            with_client(&lab, |c| Ok(c.reboot_vm(&vm.id)?)).unwrap();
        }
    }
    with_client(&lab, |c| Ok(c.delete_vm(&vm.id)?)).unwrap();
}
