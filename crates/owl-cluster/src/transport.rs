//! Gossip over UDP with every datagram signed: `tag (32 bytes) ‖ message`,
//! the tag an HMAC-SHA256 of the message under the cluster's gossip key.
//! A datagram whose tag does not verify — another cluster, a stranger, a
//! corrupted packet — is counted and dropped before chitchat parses it.
//!
//! Replaying a recorded datagram teaches a node nothing new: chitchat keeps
//! the highest version of every key and ignores older ones.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use async_trait::async_trait;
use chitchat::transport::{Socket, Transport};
use chitchat::{ChitchatMessage, Deserializable, Serializable};

use crate::secret::ClusterSecret;

/// The largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65_507;
const TAG_LEN: usize = 32;

/// Counters shared between the transport and the membership view.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Datagrams dropped because their signature did not verify.
    pub(crate) rejected: AtomicU64,
    /// Messages too large to send in one datagram (dropped).
    pub(crate) oversized: AtomicU64,
}

#[derive(Clone)]
pub(crate) struct SignedUdp {
    pub(crate) secret: ClusterSecret,
    pub(crate) counters: Arc<Counters>,
}

#[async_trait]
impl Transport for SignedUdp {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let socket = tokio::net::UdpSocket::bind(listen_addr)
            .await
            .with_context(|| format!("cannot open the gossip address {listen_addr} (UDP)"))?;
        Ok(Box::new(SignedSocket {
            socket,
            secret: self.secret.clone(),
            counters: self.counters.clone(),
            send_buf: Vec::with_capacity(MAX_DATAGRAM),
            recv_buf: vec![0; MAX_DATAGRAM].into_boxed_slice(),
        }))
    }
}

struct SignedSocket {
    socket: tokio::net::UdpSocket,
    secret: ClusterSecret,
    counters: Arc<Counters>,
    send_buf: Vec<u8>,
    recv_buf: Box<[u8]>,
}

#[async_trait]
impl Socket for SignedSocket {
    async fn send(&mut self, to: SocketAddr, msg: ChitchatMessage) -> anyhow::Result<()> {
        self.send_buf.clear();
        self.send_buf.resize(TAG_LEN, 0);
        msg.serialize(&mut self.send_buf);
        if self.send_buf.len() > MAX_DATAGRAM {
            // chitchat sizes its messages for a bare datagram; a message that
            // no longer fits with our tag is dropped (the next round resends
            // what it carried) rather than ending the gossip server.
            self.counters.oversized.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(target: "owl::cluster", bytes = self.send_buf.len(), "gossip message too large, dropped");
            return Ok(());
        }
        let tag = self.secret.tag_gossip(&self.send_buf[TAG_LEN..]);
        self.send_buf[..TAG_LEN].copy_from_slice(&tag);
        if let Err(e) = self.socket.send_to(&self.send_buf, to).await {
            // A peer that is gone or unreachable is the failure detector's
            // business, not a broken transport.
            tracing::debug!(target: "owl::cluster", %to, error = %e, "gossip send failed");
        }
        Ok(())
    }

    async fn recv(&mut self) -> anyhow::Result<(SocketAddr, ChitchatMessage)> {
        loop {
            let (len, from) = match self.socket.recv_from(&mut self.recv_buf).await {
                Ok(received) => received,
                Err(e) if is_transient(&e) => continue,
                Err(e) => return Err(e).context("gossip socket failed"),
            };
            let datagram = &self.recv_buf[..len];
            if len < TAG_LEN
                || !self
                    .secret
                    .verify_gossip(&datagram[TAG_LEN..], &datagram[..TAG_LEN])
            {
                let n = self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                // Log the first and then every 1000th: a stranger flooding
                // the port must not flood the log.
                if n.is_multiple_of(1000) {
                    tracing::warn!(target: "owl::cluster", %from, rejected = n + 1,
                        "gossip datagram without a valid cluster signature dropped");
                }
                continue;
            }
            let mut payload = &datagram[TAG_LEN..];
            match ChitchatMessage::deserialize(&mut payload) {
                Ok(msg) => return Ok((from, msg)),
                Err(e) => {
                    tracing::warn!(target: "owl::cluster", %from, error = %e, "signed gossip datagram does not parse");
                }
            }
        }
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::Interrupted
            | std::io::ErrorKind::OutOfMemory
    )
}
