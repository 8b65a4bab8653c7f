//! A protocol-level TFTP client for the tests: it sends exactly what a test tells it to and
//! reports every packet it gets, so that retransmissions and duplicates can be counted.

use std::net::SocketAddr;
use std::time::Duration;

use pifoundry_tftp::packet::{ErrorCode, Mode, Packet, Request, TftpOption};
use tokio::net::UdpSocket;

/// A received packet, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    Data { block: u16, data: Vec<u8> },
    Ack(u16),
    Error { code: u16, message: String },
    OAck(Vec<(String, String)>),
    Other,
}

impl Got {
    fn from(packet: Packet<'_>) -> Got {
        match packet {
            Packet::Data { block, data } => Got::Data {
                block,
                data: data.to_vec(),
            },
            Packet::Ack { block } => Got::Ack(block),
            Packet::Error { code, message } => Got::Error {
                code: code.0,
                message: String::from_utf8_lossy(message).into_owned(),
            },
            Packet::OAck { options } => Got::OAck(
                options
                    .iter()
                    .map(|o| (o.name.to_owned(), o.value.to_owned()))
                    .collect(),
            ),
            Packet::Rrq(_) | Packet::Wrq(_) => Got::Other,
        }
    }
}

pub struct Client {
    pub socket: UdpSocket,
    /// Where requests go (the server's or a relay's listening port).
    pub server: SocketAddr,
    /// The transfer's port, learnt from the first reply.
    pub tid: Option<SocketAddr>,
    /// How long [`Client::get`] lingers after the last ACK to answer a resent last block
    /// (RFC 1350's "dally"), should that ACK have been lost.
    pub dally: Duration,
}

/// How long a test waits for a packet it expects.
pub const WAIT: Duration = Duration::from_secs(5);

impl Client {
    pub async fn new(server: SocketAddr) -> Client {
        Client {
            socket: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            server,
            tid: None,
            dally: Duration::ZERO,
        }
    }

    pub async fn rrq(&mut self, file: &str, options: &[(&str, &str)]) {
        self.tid = None;
        let options = options
            .iter()
            .map(|&(name, value)| TftpOption { name, value })
            .collect();
        let request = Request {
            filename: file.as_bytes(),
            mode: Mode::Octet,
            options,
        };
        self.socket
            .send_to(&Packet::Rrq(request).to_bytes(), self.server)
            .await
            .unwrap();
    }

    /// The next packet within `within`, from anyone; learns the transfer's port.
    pub async fn recv(&mut self, within: Duration) -> Option<(Got, SocketAddr)> {
        let mut buf = vec![0u8; 70000];
        let (len, from) = tokio::time::timeout(within, self.socket.recv_from(&mut buf))
            .await
            .ok()?
            .unwrap();
        self.tid.get_or_insert(from);
        let got = pifoundry_tftp::parse(&buf[..len])
            .map(Got::from)
            .expect("the server sends valid packets");
        Some((got, from))
    }

    /// The next packet, which the test expects to come.
    pub async fn expect(&mut self) -> Got {
        self.recv(WAIT).await.expect("a packet from the server").0
    }

    pub async fn send(&self, packet: Packet<'_>) {
        let tid = self.tid.expect("a transfer in progress");
        self.socket.send_to(&packet.to_bytes(), tid).await.unwrap();
    }

    pub async fn ack(&self, block: u16) {
        self.send(Packet::Ack { block }).await;
    }

    pub async fn abort(&self, message: &str) {
        self.send(Packet::Error {
            code: ErrorCode::NOT_DEFINED,
            message: message.as_bytes(),
        })
        .await;
    }

    /// Downloads `file` the straightforward way: ACK 0 after an OACK, then every block, and
    /// every duplicate block again (its ACK may have been lost). Returns the file, or the
    /// server's error.
    pub async fn get(
        &mut self,
        file: &str,
        options: &[(&str, &str)],
    ) -> Result<Download, (u16, String)> {
        self.rrq(file, options).await;
        let mut out = Download::default();
        let mut blksize = 512;
        let mut expected: u16 = 1;
        loop {
            match self.expect().await {
                Got::OAck(options) => {
                    if let Some((_, v)) = options.iter().find(|(n, _)| n == "blksize") {
                        blksize = v.parse().unwrap();
                    }
                    out.oack = Some(options);
                    self.ack(0).await;
                }
                Got::Data { block, data } if block == expected => {
                    out.bytes.extend_from_slice(&data);
                    out.blocks += 1;
                    self.ack(block).await;
                    if data.len() < blksize {
                        while let Some((Got::Data { block: again, .. }, _)) =
                            self.recv(self.dally).await
                        {
                            out.duplicates += 1;
                            self.ack(again).await;
                        }
                        return Ok(out);
                    }
                    expected = expected.wrapping_add(1);
                }
                Got::Data { block, .. } => {
                    out.duplicates += 1;
                    self.ack(block).await;
                }
                Got::Error { code, message } => return Err((code, message)),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

#[derive(Debug, Default)]
pub struct Download {
    pub bytes: Vec<u8>,
    pub blocks: u64,
    /// DATA packets received again (retransmissions that crossed an ACK, or duplicates).
    pub duplicates: u64,
    pub oack: Option<Vec<(String, String)>>,
}
