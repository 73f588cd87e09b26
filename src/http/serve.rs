//! The HTTP listener: accepts connections, speaks TLS when configured, HTTP/1.1 and HTTP/2,
//! and bounds what a connection may hold.
//!
//! - At most `http.max_connections` connections are open at once, WebSockets included (the
//!   slot travels with the socket into the upgraded connection). One more is refused at once:
//!   plain HTTP gets a `503` with `Retry-After`, TLS is closed before its handshake.
//! - A connection must deliver a complete request head within `http.header_read_timeout` of
//!   being accepted, its TLS handshake included; on HTTP/1.1 each next head too (hyper's own
//!   timer). A connection that does not is closed. Bodies are bounded in `body.rs`.
//!
//! Stopping: the listener closes, connections finish their requests in flight (HTTP/1.1) or
//! are told to go away (HTTP/2), and `serve` returns once the last one is gone.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower_service::Service as _;

/// How connections are bounded (from `[http]`).
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

/// Refusals in progress at most: each writes a `503` and waits briefly for the client to read
/// it. Beyond this, refused connections are just closed.
const REFUSING_AT_MOST: usize = 64;
/// How long a refused connection may take to read its `503`.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; \
charset=utf-8\r\nretry-after: 5\r\nconnection: close\r\ncontent-length: 45\r\n\r\n\
The server is at its connection limit; retry.\n";

/// Serves `app` on `listener` until `stop` resolves, then waits for open connections to end.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    stop: impl Future<Output = ()>,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(REFUSING_AT_MOST));
    // `stopping` tells connections to finish; each holds a `gone` receiver until it ends.
    let (stopping_tx, stopping) = watch::channel(false);
    let (gone_tx, gone) = watch::channel(());
    let ctx = Arc::new(ConnCtx {
        app,
        tls,
        header_timeout: limits.header_read_timeout,
    });
    let mut stop = pin!(stop);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut stop => break,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                accept_failed(&e).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refuse(stream, remote, ctx.tls.is_some(), &refusals);
            continue;
        };
        let (ctx, stopping, gone) = (ctx.clone(), stopping.clone(), gone.clone());
        tokio::spawn(async move {
            connection(&ctx, stream, remote, slot, stopping).await;
            drop(gone);
        });
    }
    drop(listener);
    let _ = stopping_tx.send(true);
    drop(gone);
    gone_tx.closed().await;
    Ok(())
}

/// Errors from `accept` are about one connection (reset before it was taken) or about the
/// process (out of file descriptors): the latter would repeat at once, so wait a moment.
async fn accept_failed(e: &io::Error) {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock
    ) {
        return;
    }
    tracing::warn!("cannot accept HTTP connections: {e}; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// A connection over the limit: a `503` over plain HTTP, just closed over TLS (answering would
/// cost a handshake).
fn refuse(stream: TcpStream, remote: SocketAddr, tls: bool, refusals: &Arc<Semaphore>) {
    tracing::debug!(%remote, "connection refused: at http.max_connections");
    if tls {
        return;
    }
    let Ok(permit) = refusals.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let mut stream = stream;
        let _ = tokio::time::timeout(REFUSAL_LINGER, async {
            stream.write_all(REFUSAL).await?;
            stream.shutdown().await?;
            // Read what the client sent, so that closing does not reset the connection
            // before it has read the answer.
            let mut sink = [0u8; 1024];
            while tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await? > 0 {}
            io::Result::Ok(())
        })
        .await;
        drop(permit);
    });
}

struct ConnCtx {
    app: Router,
    tls: Option<TlsAcceptor>,
    header_timeout: Duration,
}

async fn connection(
    ctx: &ConnCtx,
    stream: TcpStream,
    remote: SocketAddr,
    slot: OwnedSemaphorePermit,
    stopping: watch::Receiver<bool>,
) {
    let deadline = Instant::now() + ctx.header_timeout;
    let _ = stream.set_nodelay(true);
    let io = Slotted {
        io: stream,
        _slot: slot,
    };
    let Some(acceptor) = &ctx.tls else {
        return serve_http(ctx, io, auto_builder(ctx), deadline, stopping, remote).await;
    };
    let tls = match tokio::time::timeout_at(deadline, acceptor.accept(io)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%remote, "TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "TLS handshake not done in time");
            return;
        }
    };
    // ALPN decided the protocol: no need to sniff the first bytes.
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let builder = auto_builder(ctx);
    let builder = if h2 {
        builder.http2_only()
    } else {
        builder.http1_only()
    };
    serve_http(ctx, tls, builder, deadline, stopping, remote).await;
}

fn auto_builder(ctx: &ConnCtx) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(ctx.header_timeout);
    // WebSockets over HTTP/2 (RFC 8441) need the extended CONNECT method; keepalive pings find
    // connections whose network is gone.
    b.http2()
        .timer(TokioTimer::new())
        .enable_connect_protocol()
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

/// Serves one connection; closes it if no request head arrived by `deadline`.
async fn serve_http<I>(
    ctx: &ConnCtx,
    io: I,
    builder: auto::Builder<TokioExecutor>,
    deadline: Instant,
    mut stopping: watch::Receiver<bool>,
    remote: SocketAddr,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let started = Arc::new(Notify::new());
    let service = {
        let (app, started) = (ctx.app.clone(), started.clone());
        hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            started.notify_one();
            // Who is asking: the audit log records it.
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(remote));
            let mut app = app.clone();
            async move { app.call(req).await }
        })
    };
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    let mut conn = pin!(conn);
    let mut first = pin!(started.notified());
    let mut waiting = true;
    let mut draining = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::trace!("connection ended: {e}");
                }
                return;
            }
            () = &mut first, if waiting => waiting = false,
            () = tokio::time::sleep_until(deadline), if waiting => {
                tracing::debug!("no request head in time; connection closed");
                return;
            }
            r = stopping.wait_for(|s| *s), if !draining => {
                draining = true;
                if r.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// A connection's socket with its slot under `max_connections`: the slot is given back when
/// the socket closes, also after an upgrade to WebSocket moved it out of hyper.
struct Slotted<T> {
    io: T,
    _slot: OwnedSemaphorePermit,
}

impl<T: AsyncRead + Unpin> AsyncRead for Slotted<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Slotted<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Raises the soft open-files limit to the hard one when it is below what `max_connections`
/// needs (plus room for the database, recordings and media sockets), and says so when even
/// the hard limit is too low: past it, connections fail at `accept` instead of being refused.
pub fn ensure_open_files(max_connections: usize) {
    const SPARE: u64 = 512;
    let wanted = u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_add(SPARE);
    match rlimit::raise_nofile(wanted) {
        Ok(limit) if limit < wanted => tracing::warn!(
            "the open-files limit is {limit}, below http.max_connections ({max_connections}) \
             plus {SPARE}: raise it (ulimit -n, LimitNOFILE= in a systemd unit) or lower \
             http.max_connections"
        ),
        Ok(_) => {}
        Err(e) => tracing::debug!("cannot read the open-files limit: {e}"),
    }
}

#[cfg(unix)]
#[allow(unsafe_code)]
mod rlimit {
    //! `getrlimit`/`setrlimit` for `RLIMIT_NOFILE`: each call passes a pointer to a local
    //! struct that outlives it.

    /// Raises the soft limit towards `wanted` (at most to the hard limit); the new soft limit.
    pub fn raise_nofile(wanted: u64) -> std::io::Result<u64> {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let target = wanted.min(lim.rlim_max);
        if lim.rlim_cur >= target {
            return Ok(lim.rlim_cur);
        }
        let raised = libc::rlimit {
            rlim_cur: target,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit for the duration of the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Ok(lim.rlim_cur);
        }
        Ok(target)
    }
}

#[cfg(not(unix))]
mod rlimit {
    pub fn raise_nofile(_wanted: u64) -> std::io::Result<u64> {
        Ok(u64::MAX)
    }
}
