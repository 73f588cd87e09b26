//! The media shards' figures: UDP counters (atomics the shard thread adds to per batch) and
//! the SFU snapshot each shard publishes about once a second. Every family has a `shard`
//! label; sum over it for the node.

use std::sync::atomic::Ordering;

use ketang_sfu::{BWE_BUCKETS_BPS, Role, SfuSnapshot, Transport};

use super::text::{Kind, Writer};
use crate::media::ShardHandle;

/// One family: a name, its type and help, and how to get each shard's samples.
struct Family {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    /// Extra label name, and (value, getter) pairs; `None` for a single sample per shard.
    split: Option<(&'static str, &'static [(&'static str, Get)])>,
    get: Get,
}

/// Reads one value of a shard.
type Get = fn(&Shard) -> f64;

/// What is known of one shard at scrape time.
struct Shard<'a> {
    handle: &'a ShardHandle,
    sfu: SfuSnapshot,
}

impl Shard<'_> {
    fn atomic(&self, f: fn(&crate::media::ShardStats) -> u64) -> f64 {
        f(&self.handle.stats) as f64
    }
}

fn none(_: &Shard) -> f64 {
    0.0
}

const ROLES: &[(&str, Get)] = &[
    ("teacher", |s| s.sfu.peers(Role::Teacher) as f64),
    ("classroom", |s| s.sfu.peers(Role::Classroom) as f64),
    ("observer", |s| s.sfu.peers(Role::Observer) as f64),
    ("viewer", |s| s.sfu.peers(Role::Viewer) as f64),
];

const TRANSPORTS: &[(&str, Get)] = &[
    ("udp", |s| s.sfu.peers_on(Transport::Udp) as f64),
    ("tcp", |s| s.sfu.peers_on(Transport::Tcp) as f64),
    ("turn_udp", |s| s.sfu.peers_on(Transport::TurnUdp) as f64),
    ("turn_tcp", |s| s.sfu.peers_on(Transport::TurnTcp) as f64),
    ("turn_tls", |s| s.sfu.peers_on(Transport::TurnTls) as f64),
];

const FAMILIES: &[Family] = &[
    Family {
        name: "ketang_rooms",
        kind: Kind::Gauge,
        help: "Live rooms.",
        split: None,
        get: |s| s.sfu.rooms as f64,
    },
    Family {
        name: "ketang_peers",
        kind: Kind::Gauge,
        help: "Peers (browser pages, WHIP encoders, WHEP players) by role.",
        split: Some(("role", ROLES)),
        get: none,
    },
    Family {
        name: "ketang_peers_connected",
        kind: Kind::Gauge,
        help: "Peers whose ICE and DTLS are up.",
        split: None,
        get: |s| s.sfu.peers_connected as f64,
    },
    Family {
        name: "ketang_peers_by_transport",
        kind: Kind::Gauge,
        help: "Connected peers by the transport their media uses (udp; tcp: ICE over TCP; turn_udp, turn_tcp, turn_tls: through the TURN server, by the client's leg to it).",
        split: Some(("transport", TRANSPORTS)),
        get: none,
    },
    Family {
        name: "ketang_tcp_connections",
        kind: Kind::Gauge,
        help: "Open ICE-TCP connections on the shard's listener.",
        split: None,
        get: |s| s.handle.stats.tcp.open.load(Ordering::Relaxed) as f64,
    },
    Family {
        name: "ketang_tcp_rejected_total",
        kind: Kind::Counter,
        help: "ICE-TCP connections refused or closed by the listener's bounds.",
        split: Some((
            "reason",
            &[
                ("too_many_pending", |s| {
                    s.handle.stats.tcp.refused.load(Ordering::Relaxed) as f64
                }),
                ("no_stun_in_time", |s| {
                    s.handle.stats.tcp.unproven_closed.load(Ordering::Relaxed) as f64
                }),
                ("oversized_frame", |s| {
                    s.handle.stats.tcp.oversized.load(Ordering::Relaxed) as f64
                }),
            ],
        )),
        get: none,
    },
    Family {
        name: "ketang_tracks",
        kind: Kind::Gauge,
        help: "Published tracks by kind.",
        split: Some((
            "kind",
            &[
                ("audio", |s| s.sfu.tracks_audio as f64),
                ("video", |s| s.sfu.tracks_video as f64),
            ],
        )),
        get: none,
    },
    Family {
        name: "ketang_subscriptions",
        kind: Kind::Gauge,
        help: "Tracks sent to peers (one per receiving peer and track).",
        split: None,
        get: |s| s.sfu.subscriptions as f64,
    },
    Family {
        name: "ketang_udp_datagrams_total",
        kind: Kind::Counter,
        help: "UDP datagrams on the shard's socket (media, RTCP, STUN, DTLS).",
        split: Some((
            "direction",
            &[
                ("in", |s| {
                    s.atomic(|a| a.datagrams_in.load(Ordering::Relaxed))
                }),
                ("out", |s| {
                    s.atomic(|a| a.datagrams_out.load(Ordering::Relaxed))
                }),
            ],
        )),
        get: none,
    },
    Family {
        name: "ketang_udp_bytes_total",
        kind: Kind::Counter,
        help: "UDP payload bytes on the shard's socket.",
        split: Some((
            "direction",
            &[
                ("in", |s| s.atomic(|a| a.bytes_in.load(Ordering::Relaxed))),
                ("out", |s| s.atomic(|a| a.bytes_out.load(Ordering::Relaxed))),
            ],
        )),
        get: none,
    },
    Family {
        name: "ketang_udp_send_errors_total",
        kind: Kind::Counter,
        help: "Datagrams the kernel refused to send.",
        split: None,
        get: |s| s.atomic(|a| a.send_errors.load(Ordering::Relaxed)),
    },
    Family {
        name: "ketang_rtp_received_packets_total",
        kind: Kind::Counter,
        help: "RTP packets received from publishers.",
        split: None,
        get: |s| s.sfu.counters.rtp_in as f64,
    },
    Family {
        name: "ketang_rtp_forwarded_packets_total",
        kind: Kind::Counter,
        help: "RTP packets written to subscribers, by kind (retransmissions not included).",
        split: Some((
            "kind",
            &[
                ("audio", |s| s.sfu.counters.forwarded_audio as f64),
                ("video", |s| s.sfu.counters.forwarded_video as f64),
            ],
        )),
        get: none,
    },
    Family {
        name: "ketang_peer_rounds_total",
        kind: Kind::Counter,
        help: "Timeout rounds run on peers: a batch of ingress packets costs each subscriber one.",
        split: None,
        get: |s| s.sfu.counters.peer_rounds as f64,
    },
    Family {
        name: "ketang_nacks_total",
        kind: Kind::Counter,
        help: "NACKs received from subscribers, and sent to publishers.",
        split: Some((
            "direction",
            &[
                ("received", |s| s.sfu.counters.nacks_received as f64),
                ("sent", |s| s.sfu.counters.nacks_sent as f64),
            ],
        )),
        get: none,
    },
    Family {
        name: "ketang_plis_total",
        kind: Kind::Counter,
        help: "Picture loss indications received from subscribers, and sent to publishers.",
        split: Some((
            "direction",
            &[
                ("received", |s| s.sfu.counters.plis_received as f64),
                ("sent", |s| s.sfu.counters.plis_sent as f64),
            ],
        )),
        get: none,
    },
    Family {
        name: "ketang_firs_total",
        kind: Kind::Counter,
        help: "Full intra requests received from subscribers, and sent to publishers.",
        split: Some((
            "direction",
            &[
                ("received", |s| s.sfu.counters.firs_received as f64),
                ("sent", |s| s.sfu.counters.firs_sent as f64),
            ],
        )),
        get: none,
    },
    Family {
        name: "ketang_rtp_lost_packets_total",
        kind: Kind::Counter,
        help: "Packets lost: from publishers (estimated from the shard's receiver reports), \
               and to subscribers (as their receiver reports say).",
        split: Some((
            "direction",
            &[
                ("in", |s| s.sfu.counters.lost_ingress as f64),
                ("out", |s| s.sfu.counters.lost_egress as f64),
            ],
        )),
        get: none,
    },
    Family {
        name: "ketang_layer_switches_total",
        kind: Kind::Counter,
        help: "Video subscriptions that moved to another simulcast layer or restarted at a \
               keyframe after a pause.",
        split: None,
        get: |s| s.sfu.counters.layer_switches as f64,
    },
    Family {
        name: "ketang_bwe_peers",
        kind: Kind::Gauge,
        help: "Peers with a send-side bandwidth estimate.",
        split: None,
        get: |s| s.sfu.bwe_peers as f64,
    },
    Family {
        name: "ketang_bwe_estimate_sum_bits_per_second",
        kind: Kind::Gauge,
        help: "Sum of the send-side bandwidth estimates (divide by ketang_bwe_peers for the mean).",
        split: None,
        get: |s| s.sfu.bwe_sum_bps as f64,
    },
    Family {
        name: "ketang_bwe_estimate_min_bits_per_second",
        kind: Kind::Gauge,
        help: "Lowest send-side bandwidth estimate (0 without estimates).",
        split: None,
        get: |s| s.sfu.bwe_min_bps as f64,
    },
    Family {
        name: "ketang_recording_rooms",
        kind: Kind::Gauge,
        help: "Rooms whose recorder tap is on.",
        split: None,
        get: |s| s.sfu.recording_rooms as f64,
    },
    Family {
        name: "ketang_recording_queue_dropped_total",
        kind: Kind::Counter,
        help: "Recording packets dropped because the recorder's queue was full.",
        split: None,
        get: |s| s.atomic(|a| a.record_dropped.load(Ordering::Relaxed)),
    },
];

pub(super) fn write(w: &mut Writer, handles: &[ShardHandle]) {
    let shards: Vec<Shard> = handles
        .iter()
        .map(|h| Shard {
            handle: h,
            sfu: h
                .stats
                .published
                .lock()
                .ok()
                .and_then(|p| p.as_ref().map(|p| p.sfu.clone()))
                .unwrap_or_default(),
        })
        .collect();
    let indexes: Vec<String> = handles.iter().map(|h| h.index.to_string()).collect();
    w.single(
        "ketang_shards",
        Kind::Gauge,
        "Media shards (one thread and UDP socket each).",
        handles.len() as f64,
    );
    w.family(
        "ketang_shard_running",
        Kind::Gauge,
        "1 while the shard's thread runs.",
    );
    for (s, i) in shards.iter().zip(&indexes) {
        let up = f64::from(u8::from(s.handle.is_running()));
        w.sample("ketang_shard_running", &[("shard", i)], up);
    }
    for f in FAMILIES {
        w.family(f.name, f.kind, f.help);
        for (s, i) in shards.iter().zip(&indexes) {
            match f.split {
                None => {
                    w.sample(f.name, &[("shard", i)], (f.get)(s));
                }
                Some((label, values)) => {
                    for (value, get) in values {
                        w.sample(f.name, &[("shard", i), (label, value)], get(s));
                    }
                }
            }
        }
    }
    // Cumulative, like histogram buckets, but of the estimates held now (a gauge).
    let name = "ketang_bwe_peers_at_most";
    w.family(
        name,
        Kind::Gauge,
        "Peers whose send-side bandwidth estimate is at most `le` bit/s.",
    );
    for (s, i) in shards.iter().zip(&indexes) {
        for (le, n) in BWE_BUCKETS_BPS.iter().zip(s.sfu.bwe_buckets) {
            let le = le.to_string();
            w.sample(name, &[("shard", i), ("le", &le)], n as f64);
        }
        let all = [("shard", i.as_str()), ("le", "+Inf")];
        w.sample(name, &all, s.sfu.bwe_peers as f64);
    }
}
