//! WHIP (RFC 9725) ingest and WHEP playback: one HTTP POST carries the SDP offer, the answer
//! comes back with a session URL, DELETE on that URL ends the session (protocol §6).

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ketang_sfu::{LeaveReason, PeerMode, Role, RoomId, SfuError};

use super::error::{error, shutting_down, token_error};
use crate::auth::{RoomClaims, TokenError};
use crate::media::{Identity, MediaError, PeerSignal};
use crate::state::{AppState, HttpSession};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Whip,
    Whep,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::Whip => "whip",
            Kind::Whep => "whep",
        }
    }

    fn allows(self, role: Role) -> bool {
        match self {
            Kind::Whip => role.publishes(),
            Kind::Whep => matches!(role, Role::Viewer | Role::Observer),
        }
    }
}

pub async fn whip_post(
    State(state): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    post(state, Kind::Whip, room, headers, body).await
}

pub async fn whep_post(
    State(state): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    post(state, Kind::Whep, room, headers, body).await
}

pub async fn whip_delete(
    State(state): State<AppState>,
    Path((room, session)): Path<(String, String)>,
) -> Response {
    delete(state, Kind::Whip, room, session)
}

pub async fn whep_delete(
    State(state): State<AppState>,
    Path((room, session)): Path<(String, String)>,
) -> Response {
    delete(state, Kind::Whep, room, session)
}

/// Trickle ICE and ICE restarts are not supported (the server is ICE-lite with fixed host
/// candidates; a client that loses its path posts again).
pub async fn patch_not_allowed() -> Response {
    let mut r = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "methodNotAllowed",
        "trickle ICE is not supported: send the complete offer with POST",
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("DELETE"));
    r
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

async fn post(
    state: AppState,
    kind: Kind,
    room: String,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (room, claims) = match admit(&state, kind, &room, &headers).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    // One live publisher per link (a reconnecting encoder replaces its old session); a few
    // players per link, so that one viewer link cannot open hundreds.
    let publishes = kind == Kind::Whip;
    let older = sessions_of(&state, &claims.jti, publishes);
    let cap = state.config.signaling.players_per_link;
    if !publishes && older.len() >= cap {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "tooManySessions",
            format!("this link already plays in {cap} sessions; end one (DELETE) first"),
        );
    }
    // The body is read only now, after the token and role were checked: a client without a
    // valid link cannot make the server wait for (or buffer) an offer.
    let offer = match read_offer(body, state.config.signaling.max_sdp_bytes).await {
        Ok(offer) => offer,
        Err(refused) => return refused,
    };

    let peer = state.next_peer_id();
    let session = random_id();
    // The peer's signals: only its end matters here, to forget the session.
    let (tx, rx) = crate::media::peer_channel(crate::media::PEER_QUEUE);
    state.media.registry.insert(peer, tx);
    let entry = crate::join::Entry {
        peer,
        mode: match kind {
            Kind::Whip => PeerMode::Whip,
            Kind::Whep => PeerMode::Whep,
        },
        offer,
        sources: Vec::new(),
    };
    let (shard, answer) = match crate::join::join(&state, &claims, entry).await {
        Ok(joined) => (joined.shard, joined.answer),
        Err(e) => {
            state.media.registry.remove(&peer);
            return join_refused(e);
        }
    };
    if !register(&state, peer, shard, &room, &claims) {
        return removed();
    }
    // The new session replaces the link's older publisher only once it is in: a request that
    // fails (a bad offer, a full server) leaves the running encoder alone.
    if publishes {
        for (id, s) in older {
            end_session(&state, &id, s, LeaveReason::Left);
        }
    }
    let link = claims.jti.clone();
    let it = HttpSession {
        peer,
        room: room.clone(),
        shard,
        link,
        publishes,
    };
    state.http_sessions.insert(session.clone(), it);
    // The session ends with its token, as a signaling session does.
    let expires = token_deadline(&state.clock, claims.exp);
    tokio::spawn(watch(state.clone(), session.clone(), peer, rx, expires));
    for r in &answer.rejected {
        tracing::info!(%peer, mid = %r.mid, reason = %r.reason, "{} m-line refused", kind.path());
    }
    // Not the session id: its URL is the capability to end the session.
    tracing::info!(%peer, %room, role = %claims.role, "{} session started", kind.path());
    let mut resp = created(kind, &room, &session, answer.sdp);
    ice_server_links(&state, &peer.to_string(), resp.headers_mut());
    resp
}

/// `Link: <turn:...>; rel="ice-server"` headers (RFC 9725 §4.6): the embedded TURN server
/// with a credential for this peer, for an encoder or player whose network blocks UDP.
fn ice_server_links(state: &AppState, peer: &str, h: &mut HeaderMap) {
    for server in state.ice_servers(peer) {
        for url in &server.urls {
            let v = format!(
                "<{url}>; rel=\"ice-server\"; username=\"{}\"; credential=\"{}\"; \
                 credential-type=\"password\"",
                server.username, server.credential
            );
            if let Ok(v) = HeaderValue::from_str(&v) {
                h.append(header::LINK, v);
            }
        }
    }
}

/// The checks before anything is read or joined: the server runs, the body is SDP, the link
/// is valid for this room, its role may use this endpoint, and it was not removed.
async fn admit(
    state: &AppState,
    kind: Kind,
    room: &str,
    headers: &HeaderMap,
) -> Result<(RoomId, RoomClaims), Response> {
    if state.is_shutting_down() {
        return Err(shutting_down());
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/sdp") {
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupportedMediaType",
            format!("expected Content-Type: application/sdp, got {content_type:?}"),
        ));
    }
    let room = RoomId::new(room).map_err(|e| token_error(&TokenError::Malformed(e.to_string())))?;
    let claims = state
        .admit(bearer(headers), Some(&room))
        .await
        .map_err(|e| token_error(&e))?;
    if !kind.allows(claims.role) {
        let what = match kind {
            Kind::Whip => "publish over WHIP (teacher or classroom tokens only)",
            Kind::Whep => "play over WHEP (viewer or observer tokens only)",
        };
        return Err(error(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("a {} token may not {what}", claims.role),
        ));
    }
    if state.media.people.is_removed(&room, &claims.jti) {
        return Err(removed());
    }
    Ok((room, claims))
}

/// Tells the people registry whose link the new peer is; false (and the peer taken out) if the
/// link was removed while its offer was being answered (the removal could not find it yet).
fn register(
    state: &AppState,
    peer: ketang_sfu::PeerId,
    shard: usize,
    room: &RoomId,
    claims: &RoomClaims,
) -> bool {
    let identity = Identity {
        link: claims.jti.clone(),
        room: room.clone(),
        name: claims.name.clone(),
        expires: claims.exp,
        version: claims.lv,
    };
    state.media.people.insert_http(peer, identity);
    if state.media.people.is_removed(room, &claims.jti) {
        if let Some(shard) = state.media.shards().get(shard) {
            shard.leave(peer, LeaveReason::Removed);
        }
        return false;
    }
    true
}

/// The link's live sessions of one kind (publishing or playing).
fn sessions_of(state: &AppState, link: &str, publishes: bool) -> Vec<(String, HttpSession)> {
    state
        .http_sessions
        .iter()
        .filter(|e| e.link == link && e.publishes == publishes)
        .map(|e| (e.key().clone(), e.value().clone()))
        .collect()
}

/// The offer: at most `max` bytes of UTF-8, read within the body deadline.
async fn read_offer(body: Body, max: usize) -> Result<String, Response> {
    let body: Bytes = match axum::body::to_bytes(body, max.saturating_add(1)).await {
        Ok(b) if b.len() <= max => b,
        Ok(_) => {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalidSdp",
                format!("the offer exceeds {max} bytes"),
            ));
        }
        // Too long (the limit hit mid-stream), or the body deadline passed.
        Err(e) => {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalidSdp",
                format!("the offer could not be read within {max} bytes: {e}"),
            ));
        }
    };
    String::from_utf8(body.to_vec()).map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            "invalidSdp",
            "the offer is not UTF-8 text",
        )
    })
}

/// Why the room would not take the peer, as the client is told.
fn join_refused(e: MediaError) -> Response {
    match e {
        MediaError::Sfu(SfuError::InvalidSdp(m)) => error(StatusCode::BAD_REQUEST, "invalidSdp", m),
        MediaError::Sfu(e @ SfuError::TooManyTracks { .. }) => {
            error(StatusCode::BAD_REQUEST, "tooManyTracks", e)
        }
        MediaError::Full => {
            let mut r = error(StatusCode::SERVICE_UNAVAILABLE, "serverFull", e);
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            r
        }
        e => error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e),
    }
}

/// Follows a session until its peer leaves, the application closes it or its token expires;
/// then forgets it.
async fn watch(
    state: AppState,
    sid: String,
    peer: ketang_sfu::PeerId,
    mut rx: crate::media::PeerReceiver,
    expires: tokio::time::Instant,
) {
    loop {
        tokio::select! {
            sig = rx.recv() => match sig {
                None | Some(PeerSignal::Left(_)) => break,
                Some(PeerSignal::Close(reason)) => {
                    if let Some((_, s)) = state.http_sessions.remove(&sid) {
                        end_session(&state, &sid, s, reason.leave_reason());
                    }
                    break;
                }
                Some(PeerSignal::Event(_) | PeerSignal::Notice(_)) => {}
            },
            _ = tokio::time::sleep_until(expires) => {
                if let Some((_, s)) = state.http_sessions.remove(&sid) {
                    tracing::info!(peer = %s.peer, "token expired; session ended");
                    end_session(&state, &sid, s, LeaveReason::Removed);
                }
                break;
            }
        }
    }
    state.http_sessions.remove(&sid);
    state.media.registry.remove(&peer);
}

/// `201 Created` with the answer and the session's URL.
fn created(kind: Kind, room: &RoomId, session: &str, sdp: String) -> Response {
    let location = format!("/{}/{}/{}", kind.path(), room, session);
    let mut resp = (StatusCode::CREATED, sdp).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{session}\"")) {
        h.insert(header::ETAG, v);
    }
    resp
}

fn delete(state: AppState, kind: Kind, room: String, session: String) -> Response {
    let matches = state
        .http_sessions
        .get(&session)
        .is_some_and(|s| s.room.as_str() == room);
    if !matches {
        return error(
            StatusCode::NOT_FOUND,
            "notFound",
            format!("no {} session {session} in room {room}", kind.path()),
        );
    }
    if let Some((_, s)) = state.http_sessions.remove(&session)
        && let Some(shard) = state.media.shards().get(s.shard)
    {
        shard.leave(s.peer, LeaveReason::Left);
    }
    StatusCode::OK.into_response()
}

/// Forgets a WHIP/WHEP session and takes its peer out of the room.
fn end_session(state: &AppState, id: &str, s: HttpSession, reason: LeaveReason) {
    state.http_sessions.remove(id);
    if let Some(shard) = state.media.shards().get(s.shard) {
        shard.leave(s.peer, reason);
    }
}

/// The instant a token's `exp` (Unix seconds) falls on.
fn token_deadline(clock: &crate::time::Clock, exp: u64) -> tokio::time::Instant {
    let now_unix = clock.now_ms_u64() / 1000;
    tokio::time::Instant::now() + std::time::Duration::from_secs(exp.saturating_sub(now_unix))
}

/// The link was removed from the lesson by the teacher or an admin.
fn removed() -> Response {
    error(
        StatusCode::FORBIDDEN,
        "removed",
        "this link was removed from the lesson",
    )
}

/// 128 random bits, hex: the session URL is its own capability.
fn random_id() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
