//! The channel from the shards (and the application) to one peer's session, bounded: a client
//! that stops reading its socket cannot make the server hold its events without limit
//! (issue 13). When the queue is full the signal is dropped and the channel marked overflowed;
//! the session then closes with `bye` `slowConsumer`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::PeerSignal;

/// Signals queued per session at most. A browser reads them in microseconds; a burst of room
/// activity is tens.
pub const PEER_QUEUE: usize = 512;

/// The sending end, held by the registry.
#[derive(Debug, Clone)]
pub struct PeerSender {
    tx: mpsc::Sender<PeerSignal>,
    overflowed: Arc<AtomicBool>,
}

/// The session's end.
#[derive(Debug)]
pub struct PeerReceiver {
    rx: mpsc::Receiver<PeerSignal>,
    overflowed: Arc<AtomicBool>,
}

/// A new channel holding at most `capacity` signals.
pub fn peer_channel(capacity: usize) -> (PeerSender, PeerReceiver) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let overflowed = Arc::new(AtomicBool::new(false));
    (
        PeerSender {
            tx,
            overflowed: overflowed.clone(),
        },
        PeerReceiver { rx, overflowed },
    )
}

impl PeerSender {
    /// Queues a signal without waiting; false if it was dropped (queue full or session gone).
    pub fn send(&self, signal: PeerSignal) -> bool {
        match self.tx.try_send(signal) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.overflowed.store(true, Ordering::Relaxed);
                false
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }

    pub fn same_channel(&self, other: &PeerSender) -> bool {
        self.tx.same_channel(&other.tx)
    }
}

impl PeerReceiver {
    pub async fn recv(&mut self) -> Option<PeerSignal> {
        self.rx.recv().await
    }

    /// Whether a signal was dropped because the queue was full.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_drops_and_says_so() {
        let (tx, mut rx) = peer_channel(2);
        assert!(tx.send(PeerSignal::Left(ketang_sfu::LeaveReason::Left)));
        assert!(tx.send(PeerSignal::Left(ketang_sfu::LeaveReason::Left)));
        assert!(!rx.overflowed());
        assert!(!tx.send(PeerSignal::Left(ketang_sfu::LeaveReason::Left)));
        assert!(rx.overflowed());
        assert!(rx.recv().await.is_some());
        assert!(rx.recv().await.is_some());
        drop(tx);
        assert!(rx.recv().await.is_none());
    }
}
