//! The recorder thread: drains the queue from the shards, keeps one [`RoomRecording`] per
//! room, flushes on a timer, and hands finished files to the hasher thread.
//!
//! The thread runs a current-thread tokio runtime only to wait on the queue, the timer and the
//! control channel at once; all work in it is plain blocking code (decode, mix, write, sync),
//! which is why it is a dedicated thread and not a task on the server's runtime.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ketang_sfu::{RecordEvent, RoomId};
use tokio::sync::{broadcast, mpsc};
use tracing::{info, warn};

use crate::media::RecordSink;

use super::manifest::{Manifest, sha256_file};
use super::room::{Failure, RoomRecording};
use super::webm::Finalized;
use super::{DropCounts, Finished, RecorderSettings, RecordingStatus, room_of};

/// Counters of the recorder as a whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RecorderStats {
    /// Events handled.
    pub events: u64,
    /// Events for a room that is not being recorded (no `Started`, or it failed to start).
    pub no_room: u64,
    /// Events dropped because their room's recording had failed.
    pub after_failure: u64,
    /// Rooms recording now.
    pub active: u64,
    /// Files finished, and recordings failed.
    pub finished: u64,
    pub failed: u64,
}

#[derive(Default)]
struct Counters {
    events: AtomicU64,
    no_room: AtomicU64,
    after_failure: AtomicU64,
    active: AtomicU64,
    finished: AtomicU64,
    failed: AtomicU64,
}

enum Control {
    Shutdown,
}

/// The running recorder.
pub struct Recorder;

impl Recorder {
    /// Starts the recorder thread. Give the sink to the media plane (`MediaSettings::record`)
    /// and keep the handle for statuses and shutdown.
    pub fn start(settings: RecorderSettings) -> io::Result<(RecordSink, RecorderHandle)> {
        let mut settings = settings;
        settings.flush_every = settings
            .flush_every
            .clamp(Duration::from_millis(50), Duration::from_secs(2));
        std::fs::create_dir_all(&settings.dir)?;
        let (tx, rx) = mpsc::channel(settings.queue.max(1));
        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
        let (status, _) = broadcast::channel(1024);
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let counters = Arc::new(Counters::default());
        let (hash_tx, hash_rx) = std::sync::mpsc::channel::<HashJob>();
        let hasher = {
            let status = status.clone();
            let counters = counters.clone();
            std::thread::Builder::new()
                .name("recorder-hash".into())
                .spawn(move || hash_loop(hash_rx, status, counters))?
        };
        let w = Worker {
            settings: Arc::new(settings),
            rooms: HashMap::new(),
            status: status.clone(),
            counters: counters.clone(),
            hash_tx,
        };
        std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || {
                w.run(rx, ctl_rx);
                let _ = hasher.join();
                let _ = done_tx.send(());
            })?;
        let handle = RecorderHandle {
            ctl: ctl_tx,
            status,
            counters,
            done: done_rx,
        };
        Ok((tx, handle))
    }
}

/// Statuses, counters and shutdown of a running recorder.
pub struct RecorderHandle {
    ctl: mpsc::UnboundedSender<Control>,
    status: broadcast::Sender<RecordingStatus>,
    counters: Arc<Counters>,
    done: std::sync::mpsc::Receiver<()>,
}

impl RecorderHandle {
    /// Statuses from now on. A receiver that falls behind loses the oldest (the recorder never
    /// waits for it).
    pub fn subscribe(&self) -> broadcast::Receiver<RecordingStatus> {
        self.status.subscribe()
    }

    pub fn stats(&self) -> RecorderStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RecorderStats {
            events: get(&c.events),
            no_room: get(&c.no_room),
            after_failure: get(&c.after_failure),
            active: get(&c.active),
            finished: get(&c.finished),
            failed: get(&c.failed),
        }
    }

    /// Handles what is queued, finalizes every recording and waits for the hashes, for at most
    /// `within`; true if it all finished. Blocking: from async code use `spawn_blocking`.
    /// What does not finish in time stays as `.part` for [`recover`](super::recover).
    pub fn shutdown(self, within: Duration) -> bool {
        let _ = self.ctl.send(Control::Shutdown);
        self.done.recv_timeout(within).is_ok()
    }
}

struct HashJob {
    room: RoomId,
    file: Finalized,
    manifest: Manifest,
    drops: DropCounts,
}

struct Worker {
    settings: Arc<RecorderSettings>,
    rooms: HashMap<RoomId, RoomRecording>,
    status: broadcast::Sender<RecordingStatus>,
    counters: Arc<Counters>,
    hash_tx: std::sync::mpsc::Sender<HashJob>,
}

impl Worker {
    fn run(
        mut self,
        mut rx: mpsc::Receiver<RecordEvent>,
        mut ctl: mpsc::UnboundedReceiver<Control>,
    ) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(rt) => rt,
            Err(err) => {
                warn!(%err, "recorder cannot start");
                return;
            }
        };
        // Clusters older than half the interval are written on each tick: nothing waits in
        // memory longer than `flush_every`.
        let period = self.settings.flush_every / 2;
        rt.block_on(async {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    _ = ctl.recv() => break,
                    _ = tick.tick() => self.tick(Instant::now()),
                    ev = rx.recv() => match ev {
                        Some(ev) => self.handle(ev),
                        None => break,
                    },
                }
            }
        });
        // What was queued before the shutdown still belongs to the recordings.
        let mut left = self.settings.queue;
        while left > 0
            && let Ok(ev) = rx.try_recv()
        {
            self.handle(ev);
            left -= 1;
        }
        let rooms: Vec<RoomId> = self.rooms.keys().cloned().collect();
        for room in rooms {
            self.stop(&room);
        }
    }

    fn handle(&mut self, ev: RecordEvent) {
        if let Some(hook) = &self.settings.on_event {
            hook(&ev);
        }
        self.counters.events.fetch_add(1, Ordering::Relaxed);
        let Some(room) = room_of(&ev).cloned() else {
            return;
        };
        match ev {
            RecordEvent::Started { .. } => {
                if self.rooms.contains_key(&room) {
                    self.stop(&room);
                }
                match RoomRecording::start(room.clone(), self.settings.clone()) {
                    Ok(r) => {
                        let path = r.part_path().map(|p| p.to_owned()).unwrap_or_default();
                        self.rooms.insert(room.clone(), r);
                        self.counters.active.fetch_add(1, Ordering::Relaxed);
                        let _ = self.status.send(RecordingStatus::Started { room, path });
                    }
                    Err(e) => self.failed(
                        room,
                        Failure {
                            error: e.to_string(),
                            partial: None,
                        },
                    ),
                }
            }
            RecordEvent::Stopped { .. } => self.stop(&room),
            ev => {
                let Some(r) = self.rooms.get_mut(&room) else {
                    self.counters.no_room.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                if r.failed {
                    self.counters.after_failure.fetch_add(1, Ordering::Relaxed);
                }
                if let Err(f) = r.on_event(ev) {
                    self.failed(room, f);
                }
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        let mut failed = Vec::new();
        for (room, r) in &mut self.rooms {
            if !r.failed
                && let Err(f) = r.tick(now)
            {
                failed.push((room.clone(), f));
            }
        }
        for (room, f) in failed {
            self.failed(room, f);
        }
    }

    fn stop(&mut self, room: &RoomId) {
        let Some(r) = self.rooms.remove(room) else {
            return;
        };
        self.counters.active.fetch_sub(1, Ordering::Relaxed);
        if r.failed {
            return; // its Failed status went out already
        }
        match r.finish() {
            Ok((files, drops)) => {
                for (i, (file, manifest)) in files.into_iter().enumerate() {
                    let drops = if i == 0 { drops } else { DropCounts::default() };
                    let job = HashJob {
                        room: room.clone(),
                        file,
                        manifest,
                        drops,
                    };
                    let _ = self.hash_tx.send(job);
                }
            }
            Err(f) => self.failed(room.clone(), f),
        }
    }

    fn failed(&mut self, room: RoomId, f: Failure) {
        warn!(room = %room, error = %f.error, "recording failed");
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        let _ = self.status.send(RecordingStatus::Failed {
            room,
            error: f.error,
            partial: f.partial,
        });
    }
}

/// Hashes finished files off the recorder thread (a lesson-long file takes seconds) and only
/// then announces them, with the hash stored in the sidecar first.
fn hash_loop(
    rx: std::sync::mpsc::Receiver<HashJob>,
    status: broadcast::Sender<RecordingStatus>,
    counters: Arc<Counters>,
) {
    while let Ok(mut job) = rx.recv() {
        let sha = match sha256_file(&job.file.path) {
            Ok(s) => s,
            Err(err) => {
                warn!(path = %job.file.path.display(), %err, "finished recording unreadable");
                continue;
            }
        };
        job.manifest
            .finished(job.file.duration_ms, job.file.bytes, Some(sha.clone()));
        if let Err(err) = job.manifest.store() {
            warn!(path = %job.file.path.display(), %err, "sidecar not updated");
        }
        info!(room = %job.room, path = %job.file.path.display(),
            duration_ms = job.file.duration_ms, bytes = job.file.bytes, "recording finished");
        counters.finished.fetch_add(1, Ordering::Relaxed);
        let _ = status.send(RecordingStatus::Finished(Finished {
            room: job.room,
            path: job.file.path,
            source: job.manifest.source.clone(),
            started: job.manifest.started(),
            duration: Duration::from_millis(job.file.duration_ms),
            bytes: job.file.bytes,
            sha256: sha,
            drops: job.drops,
        }));
    }
}
