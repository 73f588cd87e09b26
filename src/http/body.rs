//! Request bodies must arrive whole within `http.body_read_timeout` of their head.
//!
//! Every body Ketang reads is small (an SDP, a JSON document: tens of KiB at most), so one
//! deadline for the whole body is fair to slow links and stops a client that sends a byte now
//! and then. A request whose body misses it is answered `408` and its connection closed.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use tokio::time::Sleep;

/// Middleware: puts the deadline on the request's body, and answers `408` if it passed.
pub async fn deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    let expired = Arc::new(AtomicBool::new(false));
    let req = if http_body::Body::is_end_stream(req.body()) {
        req // nothing to read (GET, WebSocket upgrades): no timer
    } else {
        let flag = expired.clone();
        req.map(|b| Body::new(DeadlineBody::new(b, limit, flag)))
    };
    let resp = next.run(req).await;
    if expired.load(Ordering::Relaxed) {
        let mut resp = (
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive in time\n",
        )
            .into_response();
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return resp;
    }
    resp
}

/// The body was not complete by its deadline.
#[derive(Debug, thiserror::Error)]
#[error("request body not received within {0:?}")]
pub struct BodyTimeout(Duration);

/// A body that fails once its deadline has passed.
struct DeadlineBody {
    inner: Body,
    sleep: Pin<Box<Sleep>>,
    limit: Duration,
    expired: Arc<AtomicBool>,
}

impl DeadlineBody {
    fn new(inner: Body, limit: Duration, expired: Arc<AtomicBool>) -> Self {
        DeadlineBody {
            inner,
            sleep: Box::pin(tokio::time::sleep(limit)),
            limit,
            expired,
        }
    }
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if this.sleep.as_mut().poll(cx).is_ready() {
            this.expired.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimeout(this.limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;

    async fn collect(body: DeadlineBody) -> Result<Vec<u8>, String> {
        let mut body = Box::pin(body);
        let mut out = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            let frame = frame.map_err(|e| e.to_string())?;
            if let Ok(data) = frame.into_data() {
                out.extend_from_slice(&data);
            }
        }
        Ok(out)
    }

    #[tokio::test]
    async fn a_body_in_time_passes_and_a_dripping_one_fails_at_the_deadline() {
        let flag = Arc::new(AtomicBool::new(false));
        let whole = DeadlineBody::new(Body::from("v=0"), Duration::from_millis(300), flag.clone());
        assert_eq!(collect(whole).await.unwrap(), b"v=0");
        assert!(!flag.load(Ordering::Relaxed));

        // One byte every 100 ms: each gap is short, the whole is not.
        let drip = futures_util::stream::unfold(0u8, |n| async move {
            if n == 10 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            Some((Ok::<_, std::io::Error>(Bytes::from_static(b"x")), n + 1))
        });
        let started = tokio::time::Instant::now();
        let slow = DeadlineBody::new(
            Body::from_stream(drip),
            Duration::from_millis(300),
            flag.clone(),
        );
        let e = collect(slow).await.unwrap_err();
        assert!(e.contains("not received within"), "{e}");
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(
            took < Duration::from_millis(950),
            "before the drip ended: {took:?}"
        );
        assert!(flag.load(Ordering::Relaxed));
    }
}
