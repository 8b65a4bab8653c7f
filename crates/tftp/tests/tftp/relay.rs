//! A UDP relay between a TFTP client and the server that drops or duplicates chosen packets.
//!
//! It keeps TFTP's transfer IDs intact: for every server port a client hears from, the relay
//! shows the client a port of its own, so a real client (curl, tftp-hpa) runs through it
//! unchanged. A policy decides per packet; the relay counts what passed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use pifoundry_tftp::packet::Packet;
use tokio::net::UdpSocket;
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    ToServer,
    ToClient,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Forward,
    Drop,
    Duplicate,
}

pub type Policy = Box<dyn FnMut(Dir, &Packet<'_>) -> Action + Send>;

/// What the relay saw, before its policy acted.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// DATA packets the server sent, per block number.
    pub data_sent: HashMap<u16, u32>,
    /// ACK packets the client sent.
    pub acks_sent: u64,
    pub dropped: u64,
    pub duplicated: u64,
}

impl Stats {
    pub fn data_packets(&self) -> u64 {
        self.data_sent.values().map(|&n| u64::from(n)).sum()
    }
}

pub struct Relay {
    /// Where clients send their requests.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    _closed: watch::Sender<()>,
}

struct Shared {
    server: SocketAddr,
    policy: Mutex<Policy>,
    stats: Mutex<Stats>,
    /// Per client: the socket facing the server, and the faces shown for each server port.
    sessions: Mutex<HashMap<SocketAddr, Session>>,
    closed: watch::Receiver<()>,
}

#[derive(Clone)]
struct Session {
    back: Arc<UdpSocket>,
    faces: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>>,
}

fn loopback_socket() -> Arc<UdpSocket> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_nonblocking(true).unwrap();
    Arc::new(UdpSocket::from_std(socket).unwrap())
}

impl Relay {
    pub fn start(server: SocketAddr, policy: Policy) -> Relay {
        let (closed_tx, closed) = watch::channel(());
        let front = loopback_socket();
        let shared = Arc::new(Shared {
            server,
            policy: Mutex::new(policy),
            stats: Mutex::default(),
            sessions: Mutex::default(),
            closed,
        });
        let addr = front.local_addr().unwrap();
        tokio::spawn(front_loop(Arc::clone(&shared), front));
        Relay {
            addr,
            shared,
            _closed: closed_tx,
        }
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats.lock().unwrap().clone()
    }
}

/// Receives the next datagram, or `None` once the relay is dropped.
async fn recv(shared: &Shared, socket: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut closed = shared.closed.clone();
    let mut buf = vec![0u8; 70000];
    tokio::select! {
        _ = closed.changed() => None,
        received = socket.recv_from(&mut buf) => {
            let (len, from) = received.ok()?;
            buf.truncate(len);
            Some((buf, from))
        }
    }
}

async fn front_loop(shared: Arc<Shared>, front: Arc<UdpSocket>) {
    while let Some((datagram, client)) = recv(&shared, &front).await {
        let session = {
            let mut sessions = shared.sessions.lock().unwrap();
            let mut fresh = None;
            let session = sessions.entry(client).or_insert_with(|| {
                let session = Session {
                    back: loopback_socket(),
                    faces: Arc::default(),
                };
                fresh = Some(session.clone());
                session
            });
            let session = session.clone();
            if let Some(fresh) = fresh {
                tokio::spawn(back_loop(Arc::clone(&shared), client, fresh));
            }
            session
        };
        forward(
            &shared,
            Dir::ToServer,
            &datagram,
            &session.back,
            shared.server,
        )
        .await;
    }
}

/// Server → client, for one client: each server port gets a face of its own.
async fn back_loop(shared: Arc<Shared>, client: SocketAddr, session: Session) {
    while let Some((datagram, server_port)) = recv(&shared, &session.back).await {
        let face = {
            let mut faces = session.faces.lock().unwrap();
            Arc::clone(faces.entry(server_port).or_insert_with(|| {
                let face = loopback_socket();
                let task = face_loop(
                    Arc::clone(&shared),
                    client,
                    server_port,
                    Arc::clone(&face),
                    Arc::clone(&session.back),
                );
                tokio::spawn(task);
                face
            }))
        };
        forward(&shared, Dir::ToClient, &datagram, &face, client).await;
    }
}

/// Client → one server port, through the face the client saw that port as.
async fn face_loop(
    shared: Arc<Shared>,
    client: SocketAddr,
    server_port: SocketAddr,
    face: Arc<UdpSocket>,
    back: Arc<UdpSocket>,
) {
    while let Some((datagram, from)) = recv(&shared, &face).await {
        if from == client {
            forward(&shared, Dir::ToServer, &datagram, &back, server_port).await;
        }
    }
}

async fn forward(shared: &Shared, dir: Dir, datagram: &[u8], socket: &UdpSocket, to: SocketAddr) {
    let action = match pifoundry_tftp::parse(datagram) {
        Ok(packet) => {
            let mut stats = shared.stats.lock().unwrap();
            match (&packet, dir) {
                (Packet::Data { block, .. }, Dir::ToClient) => {
                    *stats.data_sent.entry(*block).or_default() += 1
                }
                (Packet::Ack { .. }, Dir::ToServer) => stats.acks_sent += 1,
                _ => {}
            }
            let action = (shared.policy.lock().unwrap())(dir, &packet);
            match action {
                Action::Drop => stats.dropped += 1,
                Action::Duplicate => stats.duplicated += 1,
                Action::Forward => {}
            }
            action
        }
        Err(_) => Action::Forward,
    };
    let copies = match action {
        Action::Drop => 0,
        Action::Forward => 1,
        Action::Duplicate => 2,
    };
    for _ in 0..copies {
        let _ = socket.send_to(datagram, to).await;
    }
}
