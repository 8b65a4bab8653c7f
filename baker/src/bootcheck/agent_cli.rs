//! `baker agent-check`: boot a bake's stemcell with settings, an ephemeral disk and a
//! network, and check its agent over the HTTPS mbus (see [`super::agent`]).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use super::BootSpec;
use super::agent::AgentCheck;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AgentKind {
    /// cloudfoundry/bosh-agent
    Real,
    /// The CI stand-in in tests/fixtures/agent-stub (NOT the BOSH agent)
    StandIn,
}

/// Boot a stemcell as a director would (settings, ephemeral disk, DHCP network) and check
/// that its agent answers ping and get_state over HTTPS, also after a power cycle
#[derive(Debug, clap::Args)]
pub struct AgentCheckArgs {
    /// A bake output directory holding root.img and boot/ (kernel, initrd, DTBs)
    #[arg(long)]
    pub bake_dir: PathBuf,
    /// Which agent the stemcell carries (only the console milestones differ)
    #[arg(long, value_enum, default_value_t = AgentKind::Real)]
    pub agent: AgentKind,
    /// Seconds each boot may take to answer ping and get_state
    #[arg(long, default_value_t = 1200)]
    pub timeout: u64,
    /// Size of the blank ephemeral disk in MiB (≥ 2048 exercises the 32-bit size path)
    #[arg(long, default_value_t = 4096)]
    pub ephemeral_mib: u64,
    /// Keep the disk images and console logs here (default: a temporary directory, removed)
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// QEMU machine: raspi0 (armv6l) or raspi3b (arm64, qemu-system-aarch64)
    #[arg(long, default_value = "raspi0")]
    pub machine: String,
}

/// The kernel command line: SD root, the journal on the serial console so the agent's log
/// is in the console log.
pub const AGENT_APPEND: &str = "console=ttyAMA0 root=/dev/mmcblk0p2 rw rootwait panic=1 net.ifnames=0 systemd.journald.forward_to_console=1";

/// Console text marking bootstrap steps, for the time split.
pub fn milestones(kind: AgentKind) -> Vec<(String, String)> {
    let m: &[(&str, &str)] = match kind {
        AgentKind::StandIn => &[
            ("agent started", "PIFOUNDRY-AGENT-STARTED"),
            ("network up", "PIFOUNDRY-STAND-IN-NETWORK"),
            ("disk mounted", "PIFOUNDRY-STAND-IN-DISK"),
            ("mbus listening", "PIFOUNDRY-STAND-IN-MBUS"),
        ],
        AgentKind::Real => &[
            ("agent started", "Running on stemcell version"),
            (
                "network configured",
                "Running command '/var/vcap/bosh/bin/restart_networking",
            ),
            ("partitioned", "mkpart bosh-partition"),
            ("formatting data", "Running command 'mke2fs -t ext4"),
            ("data mounted", "/var/vcap/data'"),
            ("monit started", "Running command 'systemctl start monit"),
        ],
    };
    m.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

pub fn run(args: &AgentCheckArgs) -> anyhow::Result<()> {
    let mut boot = BootSpec::from_bake_dir_for(&args.bake_dir, &args.machine)?;
    boot.append = AGENT_APPEND.into();
    boot.timeout = Duration::from_secs(args.timeout);
    boot.stall = super::agent::STALL.min(boot.timeout);
    let (work, _tmp) = match &args.work_dir {
        Some(d) => (d.clone(), None),
        None => {
            let t = tempfile::Builder::new()
                .prefix("agent-check-")
                .tempdir_in(&args.bake_dir)
                .with_context(|| format!("temporary directory in {}", args.bake_dir.display()))?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    if args.agent == AgentKind::StandIn {
        eprintln!("agent-check: checking the CI stand-in agent (NOT the BOSH agent)");
    }
    let check = AgentCheck {
        boot,
        work,
        ephemeral_mib: args.ephemeral_mib,
        milestones: milestones(args.agent),
    };
    let outcomes = check.run().context("agent-check")?;
    for (i, o) in outcomes.iter().enumerate() {
        let steps: Vec<String> = o
            .milestones
            .iter()
            .map(|(s, t)| format!("{s} {t:.0} s"))
            .collect();
        println!(
            "boot {}: ping after {:.0} s; {}",
            i + 1,
            o.secs_to_ping,
            steps.join(", ")
        );
        println!(
            "boot {}: get_state agent_id={} job_state={} ephemeral={}",
            i + 1,
            o.state["agent_id"],
            o.state["job_state"],
            o.state["vitals"]["disk"]["ephemeral"]
        );
        println!("boot {}: ephemeral disk {}", i + 1, o.layout.describe());
        if o.stalls > 0 {
            println!(
                "boot {}: answered only after {} stalled attempt(s) were power-cycled",
                i + 1,
                o.stalls
            );
        }
    }
    println!("agent-check: OK; the same disk layout after the power cycle");
    Ok(())
}
