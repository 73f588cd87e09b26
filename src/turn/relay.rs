//! The relay side of an allocation: what Ketang's shard sends to the relayed address goes back
//! to the client, in ChannelData when a channel is bound to the peer, else in a Data
//! indication. Anything from an address without a permission is dropped.

use std::sync::Arc;
use std::time::Instant;

use super::allocation::Allocation;
use super::message;

/// Largest datagram relayed (media packets stay well under it).
const MAX_DATAGRAM: usize = 2048;

pub(super) fn spawn(a: Arc<Allocation>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let (n, from) = match a.relay.recv_from(&mut buf).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(relay = %a.relay_addr, "relay socket: {e}");
                    // Transient errors (ICMP port unreachable echoes) must not spin.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let now = Instant::now();
            let route = a.grants.lock().ok().and_then(|g| {
                let peer = *g.targets.get(&from)?;
                g.permitted(peer.ip(), now)
                    .then(|| (peer, g.channel_of(peer, now)))
            });
            let Some((peer, channel)) = route else {
                continue;
            };
            let payload = &buf[..n];
            let out = match channel {
                Some(number) => message::encode_channel_data(number, payload, a.leg.is_stream()),
                None => match message::data_indication(peer, payload) {
                    Some(m) => m,
                    None => continue,
                },
            };
            a.sink.send(out);
        }
    })
}
