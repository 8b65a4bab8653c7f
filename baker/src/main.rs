use clap::Parser;

/// PiFoundry's build pipeline: BOSH releases and stemcells for Raspberry Pis.
#[derive(Parser)]
#[command(name = "baker", version, about)]
enum Command {}

fn main() {
    let _ = Command::parse();
}
