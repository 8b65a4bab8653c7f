//! The two failures the netboot lab found (shared/notes/nbd-netboot.md §6, §7), against real
//! qemu-nbd exports: a client that vanished without NBD_CMD_DISC must not lock its Pi out, and
//! an export must outlive the process that started it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use powerd::block::{Block, BlockConfig, Export, ExportRequest};
use powerd_client::provision::DiskFormat;

use crate::block::{Cleanup, LOOPBACK, base_image, config, private_netns, qemu_io, run, url};

/// A newstyle handshake (NBD_OPT_EXPORT_NAME) and one 4 KiB read, then nothing: the socket
/// stays as a powered-off Pi leaves it (no NBD_CMD_DISC, no FIN) until it is dropped.
fn raw_client(e: &Export) -> TcpStream {
    let mut s = TcpStream::connect((e.host, e.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut hello = [0u8; 18];
    s.read_exact(&mut hello).unwrap();
    assert_eq!(&hello[..16], b"NBDMAGICIHAVEOPT");
    let no_zeroes = u16::from_be_bytes([hello[16], hello[17]]) & 2 != 0;
    // NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES (when offered)
    s.write_all(&(1u32 | if no_zeroes { 2 } else { 0 }).to_be_bytes())
        .unwrap();
    let mut opt = b"IHAVEOPT".to_vec();
    opt.extend(1u32.to_be_bytes()); // NBD_OPT_EXPORT_NAME
    opt.extend((e.name.len() as u32).to_be_bytes());
    opt.extend(e.name.as_bytes());
    s.write_all(&opt).unwrap();
    let mut reply = vec![0u8; if no_zeroes { 10 } else { 134 }];
    s.read_exact(&mut reply).unwrap();
    let mut req = 0x2560_9513u32.to_be_bytes().to_vec();
    req.extend(0u16.to_be_bytes()); // flags
    req.extend(0u16.to_be_bytes()); // NBD_CMD_READ
    req.extend(7u64.to_be_bytes()); // handle
    req.extend(0u64.to_be_bytes()); // offset
    req.extend(4096u32.to_be_bytes());
    s.write_all(&req).unwrap();
    let mut head = [0u8; 16];
    s.read_exact(&mut head).unwrap();
    assert_eq!(
        &head[..8],
        &[0x67, 0x44, 0x66, 0x98, 0, 0, 0, 0],
        "simple reply, no error"
    );
    let mut data = vec![0u8; 4096];
    s.read_exact(&mut data).unwrap();
    assert!(data.iter().all(|b| *b == 0xab));
    s
}

/// qemu-io on one NBD connection, fed commands one at a time.
pub(crate) struct Reader {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<std::io::PipeReader>,
    pub(crate) reads: usize,
    /// `-P 0xab ` to check the base's pattern, or nothing.
    check: &'static str,
}

impl Reader {
    fn connect(url: &str) -> Reader {
        Reader::connect_checking(url, "-P 0xab ")
    }

    /// A reader that only checks that each read succeeds.
    pub(crate) fn connect_plain(url: &str) -> Reader {
        Reader::connect_checking(url, "")
    }

    fn connect_checking(url: &str, check: &'static str) -> Reader {
        // its errors go to stderr: both on one pipe, in order
        let (out, into) = std::io::pipe().unwrap();
        let mut child = Command::new("qemu-io")
            .args(["-f", "raw", url])
            .stdin(Stdio::piped())
            .stdout(into.try_clone().unwrap())
            .stderr(into)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(out);
        Reader {
            child,
            stdin,
            stdout,
            reads: 0,
            check,
        }
    }

    /// Reads 64 KiB (checking the base's pattern); the line that says how it went.
    fn read(&mut self) -> Result<(), String> {
        let offset = (self.reads % 200) * 65536;
        writeln!(self.stdin, "read {}{offset} 64k", self.check).map_err(|e| e.to_string())?;
        let mut said = String::new();
        loop {
            let mut line = String::new();
            if self
                .stdout
                .read_line(&mut line)
                .map_err(|e| e.to_string())?
                == 0
            {
                return Err(format!("qemu-io ended: {said}"));
            }
            said.push_str(&line);
            if line.contains("failed") || line.contains("rror") {
                return Err(said);
            }
            if line.contains(" ops; ") {
                self.reads += 1;
                return Ok(());
            }
        }
    }

    pub(crate) fn read_for(&mut self, d: Duration) {
        let end = std::time::Instant::now() + d;
        while std::time::Instant::now() < end {
            let n = self.reads;
            self.read()
                .unwrap_or_else(|e| panic!("read {n} failed: {e}"));
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn overlay_export(dir: &std::path::Path, block: &Block) -> Export {
    let base = dir.join("disk.img");
    base_image(&base, 16);
    let overlay = dir.join("root.qcow2");
    block.create_overlay(&base, &overlay).unwrap();
    block
        .export(&ExportRequest {
            file: overlay,
            format: DiskFormat::Qcow2,
            allow: LOOPBACK.parse().unwrap(),
        })
        .unwrap()
}

#[test]
fn a_client_gone_without_a_disconnect_does_not_lock_out_the_next() {
    private_netns();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    // the least that works: the dead Pi's lingering connection and its next boot's
    cfg.shared = 2;
    let block = Block::open(&cfg).unwrap();
    let _cleanup = Cleanup(&block);
    let export = overlay_export(dir.path(), &block);

    let lingering = raw_client(&export);
    // a connection dropped mid-session, and a real client killed mid-session: neither says
    // NBD_CMD_DISC
    drop(raw_client(&export));
    let mut reader = Reader::connect(&url(&export));
    reader.read().unwrap();
    kill(Pid::from_raw(reader.child.id() as i32), Signal::SIGKILL).unwrap();
    drop(reader);

    // the next boot, while the first connection still lingers
    let info = run(Command::new("nbdinfo").arg(url(&export)));
    assert!(String::from_utf8_lossy(&info.stdout).contains("export-size: 16777216"));
    let (ok, text) = qemu_io(&url(&export), &["read -P 0xab 0 1M"]);
    assert!(ok, "{text}");
    // one connection: the export has one slot left beside the lingering one
    run(Command::new("nbdcopy").args(["--connections=1", &url(&export), "null:"]));
    drop(lingering);
}

const HOLDER_ENV: &str = "PIFOUNDRY_BLOCK_HOLDER";

/// The owner process of `exports_outlive_their_owner`, run by that test as a process of its
/// own (this test binary again): opens Block, exports, prints the export, waits to be killed.
#[test]
#[ignore = "the helper process of exports_outlive_their_owner"]
fn export_holder() {
    let Ok(spec) = std::env::var(HOLDER_ENV) else {
        return;
    };
    let (cfg, file): (BlockConfig, std::path::PathBuf) = serde_json::from_str(&spec).unwrap();
    let block = Block::open(&cfg).unwrap();
    let export = block
        .export(&ExportRequest {
            file,
            format: DiskFormat::Qcow2,
            allow: LOOPBACK.parse().unwrap(),
        })
        .unwrap();
    println!("EXPORT {}", serde_json::to_string(&export).unwrap());
    std::io::stdout().flush().unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// A client reads without a pause while the process that opened Block and exported is killed
/// with SIGKILL; no read fails, and a new Block lists the export as running.
#[test]
fn exports_outlive_their_owner() {
    private_netns();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let base = dir.path().join("disk.img");
    base_image(&base, 16);
    let overlay = dir.path().join("root.qcow2");
    std::fs::create_dir_all(&cfg.state_dir).unwrap();
    Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
        .arg(&base)
        .arg(&overlay)
        .status()
        .unwrap();

    let mut holder = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "block_faults::export_holder",
            "--ignored",
            "--nocapture",
        ])
        .env(
            HOLDER_ENV,
            serde_json::to_string(&(&cfg, &overlay)).unwrap(),
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(holder.stdout.take().unwrap()).lines();
    let export: Export = loop {
        let line = lines
            .next()
            .expect("the holder ended before exporting")
            .unwrap();
        if let Some(json) = line.strip_prefix("EXPORT ") {
            break serde_json::from_str(json).unwrap();
        }
    };

    let mut reader = Reader::connect(&url(&export));
    reader.read_for(Duration::from_millis(500));
    kill(Pid::from_raw(holder.id() as i32), Signal::SIGKILL).unwrap();
    holder.wait().unwrap();
    reader.read_for(Duration::from_millis(1000));

    let block = Block::open(&cfg).unwrap();
    let _cleanup = Cleanup(&block);
    let listed = block.exports();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].running && listed[0].name == export.name && listed[0].port == export.port);
    reader.read_for(Duration::from_millis(500));
    let (ok, text) = qemu_io(&url(&export), &["read -P 0xab 0 1M"]);
    assert!(ok, "a new connection after the owner's death: {text}");
    assert!(reader.reads > 20, "only {} reads", reader.reads);

    block.unexport(&export.name).unwrap();
    assert!(
        reader.read().is_err(),
        "the reads were not served by the export"
    );
}
