//! One read transfer, lock-step (RFC 1350) over a socket connected to the client.
//!
//! A packet is retransmitted only when its timer runs out, never because an ACK arrived:
//! duplicate or stale ACKs are ignored, which is what prevents the Sorcerer's Apprentice
//! syndrome (every duplicate ACK doubling the DATA packets from then on).

use std::io;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep, sleep_until};

use crate::Source;
use crate::options::Negotiated;
use crate::packet::{self, ErrorCode, Packet, TftpOption};

/// How a transfer ended, and how far it got.
#[derive(Debug)]
pub(crate) struct Report {
    /// Bytes the client acknowledged.
    pub bytes: u64,
    /// Data blocks the client acknowledged.
    pub blocks: u64,
    pub end: End,
}

#[derive(Debug)]
pub(crate) enum End {
    Complete,
    /// The client sent an ERROR packet: a probe's early termination, or a client giving up.
    Aborted {
        code: ErrorCode,
        message: String,
    },
    /// No acknowledgement of `block` after every retransmission.
    TimedOut {
        block: u16,
    },
    /// The client's port is closed (ICMP port unreachable on the connected socket).
    PeerGone,
    /// The server is shutting down.
    Stopped,
    /// The source gave fewer bytes than its announced size.
    SourceEnded,
    Io(io::Error),
}

pub(crate) struct Link<'a> {
    socket: &'a UdpSocket,
    timeout: Duration,
    retries: u32,
    stop: watch::Receiver<bool>,
    /// One retransmission timer, reset per send: cheaper than a new timer per block.
    timer: Pin<Box<Sleep>>,
}

impl<'a> Link<'a> {
    pub fn new(
        socket: &'a UdpSocket,
        timeout: Duration,
        retries: u32,
        stop: watch::Receiver<bool>,
    ) -> Link<'a> {
        let timer = Box::pin(sleep_until(Instant::now() + timeout));
        Link {
            socket,
            timeout,
            retries,
            stop,
            timer,
        }
    }
}

impl Link<'_> {
    /// Sends `packet` until ACK `block` comes back, for at most `retries` retransmissions.
    async fn exchange(&mut self, packet: &[u8], block: u16) -> Result<(), End> {
        let mut buf = [0u8; 1024];
        for _ in 0..=self.retries {
            self.socket.send(packet).await.map_err(link_error)?;
            self.timer.as_mut().reset(Instant::now() + self.timeout);
            loop {
                tokio::select! {
                    biased;
                    _ = stopped(&mut self.stop) => return Err(End::Stopped),
                    received = self.socket.recv(&mut buf) => {
                        match packet::parse(&buf[..received.map_err(link_error)?]) {
                            Ok(Packet::Ack { block: acked }) if acked == block => return Ok(()),
                            Ok(Packet::Error { code, message }) => {
                                let message = String::from_utf8_lossy(message).into_owned();
                                return Err(End::Aborted { code, message });
                            }
                            // a duplicate or stale ACK, or noise: wait on, resend nothing
                            _ => {}
                        }
                    }
                    _ = self.timer.as_mut() => break,
                }
            }
        }
        Err(End::TimedOut { block })
    }
}

/// Completes when the server says stop (or is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|&stop| stop).await;
}

fn link_error(e: io::Error) -> End {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => End::PeerGone,
        _ => End::Io(e),
    }
}

/// Sends `source` with the negotiated options: OACK (if any option was granted), then blocks
/// 1, 2, … wrapping from 65535 to 0, the last one shorter than the block size.
pub(crate) async fn send(
    link: &mut Link<'_>,
    source: &mut Source,
    negotiated: &Negotiated,
) -> Report {
    let mut report = Report {
        bytes: 0,
        blocks: 0,
        end: End::Complete,
    };
    if let Err(end) = send_blocks(link, source, negotiated, &mut report).await {
        report.end = end;
    }
    report
}

async fn send_blocks(
    link: &mut Link<'_>,
    source: &mut Source,
    negotiated: &Negotiated,
    report: &mut Report,
) -> Result<(), End> {
    if !negotiated.reply.is_empty() {
        let options = negotiated
            .reply
            .iter()
            .map(|(name, value)| TftpOption { name, value })
            .collect();
        link.exchange(&Packet::OAck { options }.to_bytes(), 0)
            .await?;
    }
    let blksize = usize::from(negotiated.blksize);
    let mut packet = Vec::with_capacity(4 + blksize);
    let mut block: u16 = 1;
    loop {
        let len = (source.size() - report.bytes).min(blksize as u64) as usize;
        packet.clear();
        packet.extend_from_slice(&packet::data_header(block));
        packet.resize(4 + len, 0);
        source
            .reader()
            .read_exact(&mut packet[4..])
            .await
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => End::SourceEnded,
                _ => End::Io(e),
            })?;
        link.exchange(&packet, block).await?;
        report.bytes += len as u64;
        report.blocks += 1;
        if len < blksize {
            return Ok(());
        }
        block = block.wrapping_add(1);
    }
}
