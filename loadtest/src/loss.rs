//! A loss injector for tests and measurements: the receive side of a client drops the first
//! arrival of every `every`-th inbound video packet (by sequence number), on the wire side of
//! every other interceptor. The NACK generator then asks for it as it would for a packet lost
//! on the network, and the repair (an RTX packet, unwrapped by webrtc-rs to the original
//! sequence number) passes. Loopback loses nothing, so without this "loss after
//! retransmission" could not be checked at all.

use std::collections::{HashSet, VecDeque};

use rtc::interceptor::{Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;

/// Wire-most slot: below congestion control (1 000), so nothing above sees the packet.
pub(crate) const SLOT: usize = 500;

/// At most this many dropped packets are remembered (awaiting their repair).
const REMEMBERED: usize = 4096;

/// See the module documentation.
pub(crate) struct LossInjector {
    every: u16,
    /// Payload type of the media to drop from (VP8).
    payload_type: u8,
    dropped: HashSet<(u32, u16)>,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl LossInjector {
    pub(crate) fn new(every: u16, payload_type: u8) -> Self {
        LossInjector {
            every: every.max(2),
            payload_type,
            dropped: HashSet::new(),
            read_queue: VecDeque::new(),
            write_queue: VecDeque::new(),
        }
    }

    /// Whether this inbound packet is dropped.
    fn drops(&mut self, ssrc: u32, payload_type: u8, seq: u16) -> bool {
        if payload_type != self.payload_type || !seq.is_multiple_of(self.every) {
            return false;
        }
        // The second arrival is the repair.
        if self.dropped.remove(&(ssrc, seq)) {
            return false;
        }
        if self.dropped.len() >= REMEMBERED {
            self.dropped.clear();
        }
        self.dropped.insert((ssrc, seq));
        true
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for LossInjector {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = webrtc::error::Error;
    type Time = std::time::Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtp(p) = &msg.message.packet
            && self.drops(
                p.header.ssrc,
                p.header.payload_type,
                p.header.sequence_number,
            )
        {
            return Ok(());
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for LossInjector {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_the_first_arrival_of_every_nth_video_packet_only() {
        let mut l = LossInjector::new(10, 96);
        let dropped: Vec<u16> = (0..40u16).filter(|s| l.drops(1, 96, *s)).collect();
        assert_eq!(dropped, vec![0, 10, 20, 30]);
        assert!(!l.drops(1, 96, 10), "the repair passes");
        assert!(!l.drops(1, 111, 50), "audio is not touched");
        assert!(!l.drops(1, 97, 60), "nor RTX as such");
        assert!(l.drops(2, 96, 10), "per SSRC");
    }
}
