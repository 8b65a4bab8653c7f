//! `baker lock add` and `baker fetch`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use pifoundry_util::{Arch, arch};

use crate::blobs_lock::{self, BlobsLock, KEY, LockEntry};
use crate::fetch::{FetchOptions, Fetcher};

/// Where blobs are cached.
#[derive(Args, Debug, Clone)]
pub struct CacheArgs {
    /// Cache root (default: $PIFOUNDRY_CACHE_DIR, else $XDG_CACHE_HOME/pifoundry); blobs live
    /// in <cache-dir>/blobs/sha256/ab/abcd…
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Extra attempts after a transient network failure
    #[arg(long, default_value_t = 4)]
    pub retries: u32,
}

impl CacheArgs {
    fn options(&self) -> FetchOptions {
        FetchOptions {
            cache_dir: self.cache_dir.clone(),
            retries: self.retries,
            ..FetchOptions::default()
        }
    }
}

/// Where blobs are cached and fetched from.
#[derive(Args, Debug, Clone)]
pub struct FetchArgs {
    #[command(flatten)]
    pub cache: CacheArgs,
    /// Fetch by sha256 from DIR or URL instead of the lock URLs (also $PIFOUNDRY_MIRROR);
    /// layout <mirror>/sha256/<hex> or <mirror>/sha256/<hex[..2]>/<hex>
    #[arg(long, value_name = "DIR|URL")]
    pub mirror: Option<String>,
    /// Parallel downloads
    #[arg(long, short = 'j', default_value_t = 4)]
    pub jobs: usize,
}

impl FetchArgs {
    pub fn options(&self) -> FetchOptions {
        let mut o = self.cache.options();
        o.mirror = self
            .mirror
            .clone()
            .or_else(|| FetchOptions::from_env().mirror);
        o.jobs = self.jobs;
        o
    }
}

#[derive(Subcommand, Debug)]
pub enum LockCommand {
    /// Download URL, record its sha256 and size under KEY
    Add {
        /// Name for the blob in recipes (letters, digits, . _ + -)
        key: String,
        /// Where to download it: file://, http:// or https://
        url: String,
        /// What the blob runs on: armv6l, arm64, amd64 or any
        #[arg(long, default_value = "any", value_parser = arch::parse_or_any)]
        // spelled out: clap would make a bare `Option` an optional argument
        arch: ::std::option::Option<Arch>,
        /// What upstream blob it replaces, or what it is for
        #[arg(long)]
        replaces: Option<String>,
        /// Overwrite an existing entry
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Record Go toolchain VERSION's linux builds from the Go project's download index
    /// (published sha256 and size; nothing is downloaded)
    Go {
        /// e.g. 1.25.14
        version: String,
        /// Architectures to record (repeatable)
        #[arg(long = "arch", default_values = ["amd64", "arm64", "armv6l"])]
        arches: Vec<Arch>,
        /// The index to read
        #[arg(long, default_value = crate::blobs_go::GO_INDEX)]
        index: String,
        /// Overwrite entries whose pin differs
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        cache: CacheArgs,
    },
}

#[derive(Args, Debug)]
pub struct LockArgs {
    /// The lock file
    #[arg(long, global = true, default_value = blobs_lock::LOCK_FILE)]
    pub lock: PathBuf,
    #[command(subcommand)]
    pub command: LockCommand,
}

#[derive(Args, Debug)]
pub struct FetchCmd {
    /// Keys to fetch (default: every entry of the lock)
    pub keys: Vec<String>,
    /// The lock file
    #[arg(long, default_value = blobs_lock::LOCK_FILE)]
    pub lock: PathBuf,
    #[command(flatten)]
    pub fetch: FetchArgs,
}

pub fn lock(args: LockArgs) -> Result<()> {
    match args.command {
        LockCommand::Add {
            key,
            url,
            arch,
            replaces,
            force,
            cache,
        } => {
            KEY.check(&key)?;
            let mut lock = BlobsLock::load_or_empty(&args.lock)?;
            if lock.contains(&key) && !force {
                bail!(
                    "{}: blob {key:?} already exists (pass --force to replace it)",
                    args.lock.display()
                );
            }
            // from the URL given, never from a mirror: this is where a pin comes from
            let fetcher = Fetcher::new(cache.options())?;
            let got = fetcher.fetch_new(&key, &url)?;
            lock.insert(LockEntry {
                key: key.clone(),
                url,
                sha256: got.sha256.clone(),
                tree: None,
                links: false,
                size: Some(got.size),
                arch,
                replaces,
            })?;
            lock.save(&args.lock)?;
            println!(
                "{key}: sha256 {} size {} -> {}",
                got.sha256,
                got.size,
                args.lock.display()
            );
            Ok(())
        }
        LockCommand::Go {
            version,
            arches,
            index,
            force,
            cache,
        } => lock_go(&args.lock, &version, &arches, &index, force, &cache),
    }
}

/// `baker lock go`: every requested build must be in the index; entries already pinned the
/// same way are left alone.
fn lock_go(
    lock_path: &std::path::Path,
    version: &str,
    arches: &[Arch],
    index: &str,
    force: bool,
    cache: &CacheArgs,
) -> Result<()> {
    let fetcher = Fetcher::new(cache.options())?;
    let json = fetcher.read_document("Go download index", index, 256 << 20)?;
    let entries = crate::blobs_go::entries(&json, index, version, arches)?;
    let mut lock = BlobsLock::load_or_empty(lock_path)?;
    for e in &entries {
        if let Ok(old) = lock.get(&e.key) {
            if old.sha256 == e.sha256 && old.url == e.url && old.size == e.size {
                println!("{}: already pinned", e.key);
                continue;
            }
            if !force {
                bail!(
                    "{}: blob {:?} is pinned to sha256 {}, the index says {} (pass --force to replace it)",
                    lock_path.display(),
                    e.key,
                    old.sha256,
                    e.sha256
                );
            }
        }
        lock.insert(e.clone())?;
        println!(
            "{}: sha256 {} size {} -> {}",
            e.key,
            e.sha256,
            e.size.unwrap_or_default(),
            lock_path.display()
        );
    }
    lock.save(lock_path)?;
    Ok(())
}

pub fn fetch(args: FetchCmd) -> Result<()> {
    let lock = BlobsLock::load(&args.lock)?;
    let entries: Vec<&LockEntry> = if args.keys.is_empty() {
        lock.entries().collect()
    } else {
        args.keys
            .iter()
            .map(|k| lock.get(k))
            .collect::<Result<_, _>>()?
    };
    let fetcher = Fetcher::new(args.fetch.options())?;
    let paths = fetcher
        .ensure_all(&entries)
        .with_context(|| format!("fetching into {}", fetcher.cache_dir().display()))?;
    for (e, p) in entries.iter().zip(paths) {
        println!("{}\t{}", e.key, p.display());
    }
    Ok(())
}
