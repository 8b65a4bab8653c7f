use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use baker::bake::{self, BakeOptions, blobs::NoBlobs, cache::StageCache};
use baker::recipe::stemcell::StemcellRecipe;

/// PiFoundry's build pipeline: BOSH releases and stemcells for Raspberry Pis.
#[derive(Parser)]
#[command(name = "baker", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Bake a stemcell from a recipe, reusing cached stages.
    Bake {
        #[arg(long)]
        recipe: PathBuf,
        /// Run this stage and all later ones even when cached.
        #[arg(long)]
        from: Option<String>,
        #[arg(short = 'o', long, default_value = "out")]
        out: PathBuf,
        /// Stage cache [default: $PIFOUNDRY_STAGE_CACHE, else $XDG_CACHE_HOME/pifoundry/stages]
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// Show a stemcell tarball's manifest and check its image checksum.
    InspectStemcell {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .init();
    match run(Cli::parse().command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("baker: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cmd: Command) -> Result<ExitCode> {
    match cmd {
        Command::Bake {
            recipe,
            from,
            out,
            cache_dir,
        } => {
            let r = StemcellRecipe::load(&recipe)?;
            let opts = BakeOptions {
                project_root: bake::project_root_of(&recipe),
                recipe_path: recipe,
                cache_dir: cache_dir.unwrap_or_else(StageCache::default_dir),
                out_dir: out,
                from,
            };
            let report = bake::bake(&r, &opts, &NoBlobs)?;
            for s in &report.stages {
                println!(
                    "{:<12} {:<10} {:<7} {:>7.1}s",
                    s.name,
                    s.kind,
                    format!("{:?}", s.outcome).to_lowercase(),
                    s.seconds
                );
            }
            if let Some(p) = &report.stemcell {
                println!("stemcell: {}", p.display());
            }
            println!("total: {:.1}s", report.seconds);
            Ok(ExitCode::SUCCESS)
        }
        Command::InspectStemcell { file, json } => {
            let i = baker::stemcell::inspect(&file)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&i).context("json")?);
            } else {
                print!("{}", i.manifest.to_yaml());
                println!("---");
                for e in &i.entries {
                    println!("{:>12}  {}", e.size, e.name);
                }
                if let Some(c) = &i.image_content {
                    println!("image contains {} ({} bytes)", c.name, c.size);
                }
                println!("packages: {}", i.packages);
                println!(
                    "image sha1 {} ({})",
                    i.image_sha1,
                    if i.sha1_matches {
                        "matches stemcell.MF"
                    } else {
                        "DOES NOT match stemcell.MF"
                    }
                );
            }
            Ok(if i.sha1_matches {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
