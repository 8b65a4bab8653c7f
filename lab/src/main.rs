use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use pifoundry_lab::layout::{API, Lab, LabSpec};
use pifoundry_lab::{Console, down, netns, power, up};

/// The virtual Pi lab: emulated Pi Zeros that netboot from a real powerd, in a network
/// namespace of their own.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a lab: namespace, bridge and taps, dnsmasq, powerd, N registered Pis.
    Up {
        #[arg(long, default_value = "out/lab")]
        dir: PathBuf,
        #[arg(long, default_value = "lab")]
        name: String,
        #[arg(long, default_value_t = 2)]
        pis: usize,
        /// A stemcell's raw disk image to upload (its `image` member, or `root.img` of a bake).
        #[arg(long)]
        image: Option<PathBuf>,
        #[arg(long)]
        powerd: Option<PathBuf>,
        /// Kill a virtual Pi after this long, e.g. `2h` (default: never).
        #[arg(long, value_parser = humantime_secs)]
        vm_life: Option<Duration>,
    },
    /// Stop everything a lab started and remove its directory.
    Down {
        #[arg(long, default_value = "out/lab")]
        dir: PathBuf,
    },
    /// The Pis: power, where their boot is, the console's last line.
    Status {
        #[arg(long, default_value = "out/lab")]
        dir: PathBuf,
    },
    /// Run a command inside the lab's namespace with POWERD_URL and POWERD_TOKEN_FILE set,
    /// e.g. `pifoundry-lab exec -- powerd ctl list`.
    Exec {
        #[arg(long, default_value = "out/lab")]
        dir: PathBuf,
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
    /// powerd's `command` outlet for a virtual Pi (called by powerd).
    PiPower {
        #[arg(long)]
        dir: PathBuf,
        action: Action,
        /// The Pi's outlet id or serial.
        pi: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Action {
    On,
    Off,
    Status,
}

fn humantime_secs(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}; write e.g. 90s, 30m, 2h"))
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pifoundry-lab: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Up {
            dir,
            name,
            pis,
            image,
            powerd,
            vm_life,
        } => {
            let mut spec = LabSpec::new(&name, &dir, pis)?;
            spec.image = image;
            spec.vm_life = vm_life;
            if let Some(p) = powerd {
                spec.powerd = p;
            }
            let lab = up::up(&spec)?;
            println!(
                "lab {:?} is up in {} (namespace {})",
                lab.name,
                lab.dir.display(),
                lab.netns
            );
            println!(
                "powerd: http://{API} inside the namespace, token in {}",
                lab.token_file().display()
            );
            if let Some(image) = &lab.image {
                println!("image: {image}");
            }
            for pi in &lab.pis {
                println!(
                    "pi {} mac {} outlet {} console {}",
                    pi.serial,
                    pi.mac,
                    pi.outlet,
                    lab.console_log(&pi.serial).display()
                );
            }
            println!(
                "try: pifoundry-lab exec --dir {} -- powerd ctl list",
                lab.dir.display()
            );
            Ok(())
        }
        Command::Down { dir } => down::down(&dir),
        Command::Status { dir } => {
            let lab = Lab::load(
                &dir.canonicalize()
                    .with_context(|| format!("{}", dir.display()))?,
            )?;
            for pi in &lab.pis {
                let on = power::running(&lab, &pi.serial).is_some();
                let mut console = Console::follow(&lab.console_log(&pi.serial));
                console.refresh();
                let last = console.text().lines().last().unwrap_or("").to_owned();
                println!(
                    "pi {} {} stage={} last={last:?}",
                    pi.serial,
                    if on { "on" } else { "off" },
                    if on {
                        console.stage().to_string()
                    } else {
                        "-".into()
                    }
                );
            }
            Ok(())
        }
        Command::Exec { dir, command } => {
            let lab = Lab::load(
                &dir.canonicalize()
                    .with_context(|| format!("{}", dir.display()))?,
            )?;
            let status = netns::command(&lab.netns, &command[0])
                .args(&command[1..])
                .env("POWERD_URL", format!("http://{API}"))
                .env("POWERD_TOKEN_FILE", lab.token_file())
                .status()
                .with_context(|| command[0].clone())?;
            if !status.success() {
                anyhow::bail!("{} exited with {status}", command[0]);
            }
            Ok(())
        }
        Command::PiPower { dir, action, pi } => {
            let lab = Lab::load(&dir)?;
            match action {
                Action::On => power::on(&lab, &pi),
                Action::Off => power::off(&lab, &pi),
                Action::Status => {
                    let pi = lab.pi(&pi)?;
                    println!(
                        "{}",
                        if power::running(&lab, &pi.serial).is_some() {
                            "on"
                        } else {
                            "off"
                        }
                    );
                    Ok(())
                }
            }
        }
    }
}
