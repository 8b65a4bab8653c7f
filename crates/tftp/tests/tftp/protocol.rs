//! Protocol-level behaviour with the tests' own client: option negotiation, the Pi's
//! probe-and-abort, bounded retransmission, loss and duplicates, transfer IDs, concurrency,
//! what the resolver sees, streaming, busy and shutdown.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use pifoundry_tftp::packet::{Packet, ParseError};
use pifoundry_tftp::{Config, ReadRequest, Resolver, ServedDir, Source};
use tokio::io::{AsyncRead, ReadBuf};

use crate::client::{Client, Got, WAIT};
use crate::relay::{Action, Dir, Relay};
use crate::{DropFlag, config, pattern, raised, start, write};

/// Serves one in-memory file under any name, and remembers every request it was asked.
#[derive(Clone, Default)]
struct Recorder {
    bytes: Arc<Vec<u8>>,
    seen: Arc<Mutex<Vec<ReadRequest>>>,
    dropped: Arc<AtomicBool>,
}

impl Recorder {
    fn new(bytes: Vec<u8>) -> Recorder {
        Recorder {
            bytes: Arc::new(bytes),
            ..Recorder::default()
        }
    }

    fn seen(&self) -> Vec<ReadRequest> {
        self.seen.lock().unwrap().clone()
    }
}

impl Resolver for Recorder {
    async fn resolve(&self, request: &ReadRequest) -> io::Result<Option<Source>> {
        self.seen.lock().unwrap().push(request.clone());
        if request.path.as_str().starts_with("missing") {
            return Ok(None);
        }
        let reader = DropFlag {
            inner: io::Cursor::new(self.bytes.to_vec()),
            dropped: Arc::clone(&self.dropped),
        };
        Ok(Some(Source::from_reader(reader, self.bytes.len() as u64)))
    }
}

#[tokio::test]
async fn negotiates_blksize_tsize_and_timeout_as_a_pi_asks() {
    let file = pattern(5000, 1);
    let server = start(Recorder::new(file.clone()), Config::default()).await;
    let mut client = Client::new(server.addr).await;
    client
        .rrq(
            "1a2b3c4d/start.elf",
            &[
                ("tsize", "0"),
                ("blksize", "1468"),
                ("timeout", "3"),
                ("windowsize", "8"),
            ],
        )
        .await;
    let oack = client.expect().await;
    let want = [("tsize", "5000"), ("blksize", "1468"), ("timeout", "3")];
    assert_eq!(
        oack,
        Got::OAck(
            want.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        )
    );
    client.ack(0).await;
    let Got::Data { block: 1, data } = client.expect().await else {
        panic!("DATA 1 after ACK 0")
    };
    assert_eq!(data, file[..1468]);
    client.abort("done").await;

    // a larger block size than the server's limit is granted at the limit
    let got = client.get("x", &[("blksize", "65464")]).await.unwrap();
    assert_eq!(
        got.oack.unwrap(),
        [("blksize".to_string(), "1468".to_string())]
    );
    assert_eq!((got.bytes, got.blocks), (file.clone(), 4));

    // no options: no OACK, DATA 1 at once, 512-byte blocks
    let got = client.get("x", &[]).await.unwrap();
    assert_eq!((got.oack, got.bytes, got.blocks), (None, file, 10));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_probe_that_aborts_after_the_first_block_ends_its_transfer_at_once() {
    // a long timer: a transfer that waited for it instead of ending would still be running
    let recorder = Recorder::new(pattern(100_000, 2));
    let server = start(recorder.clone(), config(Duration::from_secs(30), 5)).await;
    let mut client = Client::new(server.addr).await;
    client
        .rrq(
            "1a2b3c4d/start4.elf",
            &[("tsize", "0"), ("blksize", "1024")],
        )
        .await;
    assert!(matches!(client.expect().await, Got::OAck(_)));
    client.ack(0).await;
    assert!(matches!(client.expect().await, Got::Data { block: 1, .. }));
    client.abort("early terminate").await;
    assert!(
        raised(&recorder.dropped, Duration::from_secs(2)).await,
        "transfer still holds its source"
    );
    assert_eq!(
        client.recv(Duration::from_millis(300)).await,
        None,
        "nothing is sent after the abort"
    );

    // the size-only probe: an error in reply to the OACK
    let recorder = Recorder::new(pattern(100_000, 2));
    let server2 = start(recorder.clone(), config(Duration::from_secs(30), 5)).await;
    let mut client = Client::new(server2.addr).await;
    client.rrq("1a2b3c4d/start4.elf", &[("tsize", "0")]).await;
    assert!(matches!(client.expect().await, Got::OAck(_)));
    client.abort("size only").await;
    assert!(raised(&recorder.dropped, Duration::from_secs(2)).await);
    server.shutdown().await.unwrap();
    server2.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_unacknowledged_block_is_resent_a_bounded_number_of_times() {
    let recorder = Recorder::new(pattern(3000, 3));
    let server = start(recorder.clone(), config(Duration::from_millis(50), 3)).await;
    let mut client = Client::new(server.addr).await;
    client.rrq("f", &[]).await;
    let mut copies = 0;
    while let Some((got, _)) = client.recv(Duration::from_millis(500)).await {
        match got {
            Got::Data { block: 1, .. } => copies += 1,
            Got::Error { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(copies, 4, "the first send and 3 retransmissions");
    assert!(
        raised(&recorder.dropped, WAIT).await,
        "the abandoned transfer released its source"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn duplicate_acks_never_trigger_a_resend() {
    let file = pattern(40_000, 4);
    let server = start(
        Recorder::new(file.clone()),
        config(Duration::from_secs(5), 5),
    )
    .await;
    let mut client = Client::new(server.addr).await;
    client.rrq("f", &[("blksize", "1000")]).await;
    assert!(matches!(client.expect().await, Got::OAck(_)));
    client.ack(0).await;
    client.ack(0).await;
    let mut bytes = Vec::new();
    let mut data_packets = 0;
    loop {
        let Got::Data { block, data } = client.expect().await else {
            panic!("DATA expected")
        };
        data_packets += 1;
        bytes.extend_from_slice(&data);
        // every ACK three times, and a stale one for the block before
        for _ in 0..3 {
            client.ack(block).await;
        }
        client.ack(block.wrapping_sub(1)).await;
        if data.len() < 1000 {
            break;
        }
    }
    assert_eq!(bytes, file);
    assert_eq!(data_packets, 41);
    assert_eq!(
        client.recv(Duration::from_millis(300)).await,
        None,
        "no extra DATA after the last"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn loss_in_both_directions_is_recovered() {
    let file = pattern(80_000, 5);
    let server = start(
        Recorder::new(file.clone()),
        config(Duration::from_millis(100), 5),
    )
    .await;
    let (mut data_seen, mut acks_seen) = (0u32, 0u32);
    let relay = Relay::start(
        server.addr,
        Box::new(move |dir, packet| match (dir, packet) {
            (Dir::ToClient, Packet::Data { .. }) => {
                data_seen += 1;
                if data_seen % 7 == 0 {
                    Action::Drop
                } else {
                    Action::Forward
                }
            }
            (Dir::ToServer, Packet::Ack { block }) if *block > 0 => {
                acks_seen += 1;
                if acks_seen % 5 == 0 {
                    Action::Drop
                } else {
                    Action::Forward
                }
            }
            _ => Action::Forward,
        }),
    );
    let mut client = Client::new(relay.addr).await;
    client.dally = Duration::from_millis(500);
    let got = client.get("f", &[("blksize", "1468")]).await.unwrap();
    assert_eq!(got.bytes, file);
    let stats = relay.stats();
    assert!(stats.dropped >= 15, "the test lost packets: {stats:?}");
    // each loss costs one resend (a slow machine may add a spurious one, never fewer)
    let resent = stats.data_packets() - got.blocks;
    assert!(
        (stats.dropped..=stats.dropped + 3).contains(&resent),
        "{resent} resends: {stats:?}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn packets_from_another_port_do_not_move_a_transfer() {
    let recorder = Recorder::new(pattern(2000, 6));
    let server = start(recorder.clone(), config(Duration::from_millis(200), 5)).await;
    let mut client = Client::new(server.addr).await;
    client.rrq("f", &[]).await;
    let (Got::Data { block: 1, .. }, tid) = client.recv(WAIT).await.unwrap() else {
        panic!()
    };
    let intruder = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    intruder
        .send_to(&Packet::Ack { block: 1 }.to_bytes(), tid)
        .await
        .unwrap();
    // block 1 comes again: the forged ACK was not taken
    let (again, from) = client.recv(WAIT).await.unwrap();
    assert!(
        matches!(again, Got::Data { block: 1, .. }) && from == tid,
        "{again:?}"
    );
    client.abort("done").await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_resolver_sees_the_peer_and_only_normalised_paths() {
    let recorder = Recorder::new(b"x".to_vec());
    let server = start(recorder.clone(), Config::default()).await;
    let mut client = Client::new(server.addr).await;
    let refused = [
        "../etc/passwd",
        "a/../../b",
        "/etc/passwd",
        "a\\b",
        "a\u{1}b",
        "",
    ];
    for name in refused {
        client.rrq(name, &[]).await;
        let Got::Error { code, .. } = client.expect().await else {
            panic!("{name:?} not refused")
        };
        assert_eq!(code, 2, "{name:?}: access violation");
    }
    assert!(client.get("1a2b3c4d//./cmdline.txt", &[]).await.is_ok());
    assert_eq!(
        client.get("missing.txt", &[]).await.unwrap_err(),
        (1, "file not found".to_string())
    );
    let seen = recorder.seen();
    let me: SocketAddr = client.socket.local_addr().unwrap();
    let seen: Vec<_> = seen
        .iter()
        .map(|r| (r.peer, r.path.as_str().to_owned()))
        .collect();
    assert_eq!(
        seen,
        [
            (me, "1a2b3c4d/cmdline.txt".to_owned()),
            (me, "missing.txt".to_owned())
        ]
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn malformed_requests_are_answered_and_other_noise_ignored() {
    let server = start(Recorder::new(vec![]), Config::default()).await;
    let mut client = Client::new(server.addr).await;
    client
        .socket
        .send_to(b"\x00\x01file\x00binary\x00", server.addr)
        .await
        .unwrap();
    let want = format!("malformed request: {}", ParseError::UnknownMode);
    assert_eq!(
        client.expect().await,
        Got::Error {
            code: 4,
            message: want
        }
    );
    for noise in [&b"\x00\x04\x00\x01"[..], b"\x00\x09", b"junk"] {
        client.socket.send_to(noise, server.addr).await.unwrap();
    }
    assert_eq!(client.recv(Duration::from_millis(200)).await, None);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_transfers_at_once_each_on_their_own_port() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<Vec<u8>> = (0..50)
        .map(|i| pattern(20_000 + i * 1_001, 100 + i as u64))
        .collect();
    for (i, bytes) in files.iter().enumerate() {
        write(dir.path(), &format!("pi{i}/initrd"), bytes);
    }
    let server = start(ServedDir::open(dir.path()).unwrap(), Config::default()).await;
    let tasks: Vec<_> = (0..files.len())
        .map(|i| {
            let addr = server.addr;
            tokio::spawn(async move {
                let mut client = Client::new(addr).await;
                let got = client
                    .get(&format!("pi{i}/initrd"), &[("blksize", "512")])
                    .await
                    .unwrap();
                (got.bytes, client.tid.unwrap())
            })
        })
        .collect();
    let mut ports = std::collections::HashSet::new();
    for (task, want) in tasks.into_iter().zip(&files) {
        let (bytes, tid) = task.await.unwrap();
        assert!(
            bytes == *want,
            "a transfer got another's bytes or lost some"
        );
        assert_ne!(tid, server.addr, "data comes from the transfer's own port");
        ports.insert(tid);
    }
    assert_eq!(ports.len(), files.len(), "one port per transfer");
    server.shutdown().await.unwrap();
}

/// A reader that counts how far it has been read.
struct Counting {
    inner: io::Cursor<Vec<u8>>,
    read: Arc<AtomicU64>,
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        self.read
            .fetch_add((buf.filled().len() - before) as u64, Ordering::SeqCst);
        poll
    }
}

struct Streaming(Arc<AtomicU64>, Arc<Vec<u8>>);

impl Resolver for Streaming {
    async fn resolve(&self, _: &ReadRequest) -> io::Result<Option<Source>> {
        let reader = Counting {
            inner: io::Cursor::new(self.1.to_vec()),
            read: Arc::clone(&self.0),
        };
        Ok(Some(Source::from_reader(reader, self.1.len() as u64)))
    }
}

#[tokio::test]
async fn a_source_is_read_one_block_at_a_time_as_the_client_acknowledges() {
    let read = Arc::new(AtomicU64::new(0));
    let file = Arc::new(pattern(50_000, 7));
    let server = start(
        Streaming(Arc::clone(&read), Arc::clone(&file)),
        Config::default(),
    )
    .await;
    let mut client = Client::new(server.addr).await;
    client.rrq("f", &[]).await;
    for block in 1..=20u64 {
        let Got::Data { block: b, .. } = client.expect().await else {
            panic!()
        };
        assert_eq!(u64::from(b), block);
        // nothing is read beyond the block just sent
        assert_eq!(read.load(Ordering::SeqCst), block * 512);
        client.ack(b).await;
    }
    client.abort("enough").await;
    server.shutdown().await.unwrap();
}

struct Short;

impl Resolver for Short {
    async fn resolve(&self, _: &ReadRequest) -> io::Result<Option<Source>> {
        // announces 10,000 bytes, has 3,000
        Ok(Some(Source::from_reader(
            io::Cursor::new(pattern(3000, 8)),
            10_000,
        )))
    }
}

#[tokio::test]
async fn a_source_shorter_than_announced_fails_instead_of_sending_a_short_file() {
    let server = start(Short, Config::default()).await;
    let mut client = Client::new(server.addr).await;
    let err = client.get("f", &[]).await.unwrap_err();
    assert_eq!(err, (0, "server read error".to_string()));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_busy_server_refuses_beyond_its_transfer_limit() {
    let mut limited = config(Duration::from_secs(5), 1);
    limited.max_transfers = 1;
    let server = start(Recorder::new(pattern(2000, 9)), limited).await;
    let mut first = Client::new(server.addr).await;
    first.rrq("a", &[]).await;
    assert!(matches!(first.expect().await, Got::Data { block: 1, .. }));
    let mut second = Client::new(server.addr).await;
    second.rrq("b", &[]).await;
    assert_eq!(
        second.expect().await,
        Got::Error {
            code: 0,
            message: "server busy, try again".into()
        }
    );
    first.abort("done").await;
    // once the first has ended, a request is served again
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(second.get("b", &[]).await.is_ok());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_tells_clients_in_transfer_and_stops_listening() {
    let recorder = Recorder::new(pattern(100_000, 10));
    let server = start(recorder.clone(), config(Duration::from_secs(30), 5)).await;
    let addr = server.addr;
    let mut client = Client::new(addr).await;
    client.rrq("f", &[]).await;
    assert!(matches!(client.expect().await, Got::Data { block: 1, .. }));
    // the client never acknowledges; shutdown must not wait for the 30 s timer
    tokio::time::timeout(Duration::from_secs(5), server.shutdown())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        client.expect().await,
        Got::Error {
            code: 0,
            message: "server shutting down".into()
        }
    );
    assert!(recorder.dropped.load(Ordering::SeqCst));
    let mut late = Client::new(addr).await;
    late.rrq("f", &[]).await;
    assert_eq!(
        late.recv(Duration::from_millis(200)).await,
        None,
        "no one listens any more"
    );
}
