//! Warren's own front end (ALPN `warren-client/1`): every bidirectional
//! stream is one session. A reader turns the stream's frames into the
//! session layer's inputs; a writer sends what the engine queued for it,
//! in order, several frames per write. The identity x509 ACLs see is the
//! subject of the client's certificate.

use crate::limits::OUTBOX_FRAMES_MAX;
use crate::node::driver::{Event, Outbox};
use crate::node::engine::{ConnId, Input, SessionIn};
use crate::tls;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{Notify, mpsc};
use warren_client::frame::{self, FRAME_BYTES_MAX, FrameReader};
use warren_client::wire::{ClientFrame, Failure, Refusal, ServerFrame};
use warren_client::{Id, SessionSecret};

/// Serves the session streams of one client connection.
pub(crate) async fn serve_client(
    conn: quinn::Connection,
    core: mpsc::Sender<Event>,
    ids: Arc<AtomicU64>,
) {
    let identity = match tls::peer_identity(&conn) {
        Ok(identity) => identity,
        Err(e) => {
            conn.close(1u32.into(), e.to_string().as_bytes());
            return;
        }
    };
    while let Ok((send, recv)) = conn.accept_bi().await {
        let id = ids.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(session_stream(send, recv, identity.clone(), core.clone(), id));
    }
}

async fn session_stream(
    mut send: quinn::SendStream,
    recv: quinn::RecvStream,
    identity: String,
    core: mpsc::Sender<Event>,
    id: ConnId,
) {
    // Requests are small: a session's buffer starts at 4 KiB and grows only
    // for a longer frame.
    let mut recv = FrameReader::new(recv, 4 << 10, FRAME_BYTES_MAX);
    let hello = match recv.next::<ClientFrame>().await {
        Ok(Some(ClientFrame::Hello(hello))) => hello,
        _ => {
            let _ = frame::write(&mut send, &ServerFrame::Refused(Refusal::NoHello)).await;
            let _ = send.finish();
            return;
        }
    };
    // Drawn before the driver knows the connection, so a failure leaves
    // nothing behind there.
    let Some(secret) = random_secret() else {
        let why = "the server's random source failed; try another server".to_string();
        let refusal = Refusal::Failed(Failure::Unavailable { why });
        let _ = frame::write(&mut send, &ServerFrame::Refused(refusal)).await;
        let _ = send.finish();
        return;
    };
    let (tx, rx) = mpsc::channel(OUTBOX_FRAMES_MAX);
    let overflowed = Arc::new(Notify::new());
    let outbox = Outbox { tx, overflowed: overflowed.clone() };
    if core.send(Event::Connected { conn: id, outbox }).await.is_err() {
        return;
    }
    let identity = Id::x509(identity);
    let open = SessionIn::Open { conn: id, identity, hello: Box::new(hello), secret };
    if core.send(Event::Input(Input::Session(open))).await.is_err() {
        return;
    }
    let mut writer = tokio::spawn(write_frames(send, rx, overflowed));
    loop {
        tokio::select! {
            read = recv.next::<ClientFrame>() => match read {
                Ok(Some(frame)) => {
                    let input = match frame {
                        ClientFrame::Request { xid, request } => {
                            SessionIn::Request { conn: id, xid, request }
                        }
                        ClientFrame::Ping => SessionIn::Ping { conn: id },
                        ClientFrame::Close => SessionIn::Close { conn: id },
                        ClientFrame::Hello(_) => {
                            SessionIn::Bad { conn: id, why: "a second Hello".into() }
                        }
                    };
                    if core.send(Event::Input(Input::Session(input))).await.is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!("client stream {id}: {e}");
                    break;
                }
            },
            _ = &mut writer => break,
        }
    }
    let _ = core.send(Event::Input(Input::Session(SessionIn::Gone { conn: id }))).await;
}

/// The stream reset code of a client that read too slowly.
pub const RESET_TOO_SLOW: u32 = 1;

/// Writes the core's frames until it lets the stream go (or the client
/// does). A client that stops reading blocks the writes, the core's queue
/// for it overflows, and the stream is reset with [`RESET_TOO_SLOW`].
async fn write_frames(
    mut send: quinn::SendStream,
    mut rx: mpsc::Receiver<ServerFrame>,
    overflowed: Arc<Notify>,
) {
    tokio::select! {
        () = write_all_frames(&mut send, &mut rx) => {}
        () = overflowed.notified() => {
            let _ = send.reset(RESET_TOO_SLOW.into());
            return;
        }
    }
    let _ = send.finish();
    // Let the last frames reach the client before the stream is dropped.
    let _ = send.stopped().await;
}

async fn write_all_frames(send: &mut quinn::SendStream, rx: &mut mpsc::Receiver<ServerFrame>) {
    // One buffer for the stream's life: frames are encoded straight into it.
    let mut bytes = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut last_ends = ends(&first);
        bytes.clear();
        frame::encode_into(&first, &mut bytes);
        while bytes.len() < 256 << 10 && !last_ends {
            match rx.try_recv() {
                Ok(next) => {
                    last_ends = ends(&next);
                    frame::encode_into(&next, &mut bytes);
                }
                Err(_) => break,
            }
        }
        if send.write_all(&bytes).await.is_err() {
            return;
        }
        if last_ends {
            return;
        }
    }
}

/// Frames after which the stream is over.
fn ends(frame: &ServerFrame) -> bool {
    matches!(frame, ServerFrame::Refused(_) | ServerFrame::Goodbye(_) | ServerFrame::Closed)
}

/// A session secret from the operating system's random source (none if
/// it failed: no session is opened with a guessable secret).
pub(crate) fn random_secret() -> Option<SessionSecret> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut bytes).ok()?;
    Some(SessionSecret(bytes))
}
