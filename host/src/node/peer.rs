//! Links between members over QUIC (ALPN `warren-peer/1`, mutual TLS).
//!
//! Each member keeps one outgoing link per peer: a task that dials the
//! peer's address expecting its certificate (`nN.warren`), opens one
//! unidirectional stream, announces itself, and writes the frames the core
//! queues for that peer, in order. A full queue drops frames (consensus
//! tolerates loss; a peer that cannot keep up must not grow our memory); a
//! broken link is dialled again with a growing delay. Incoming streams are
//! read by [`serve_incoming`]: the announced id must be the one the
//! certificate names, else the stream is refused.

pub use crate::node::engine::PeerFrame;

use crate::node::driver::Event;
use crate::node::engine::Input;
use crate::tls::{self, ALPN_PEER};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;
use warren_client::frame::{self, FRAME_BYTES_MAX, FrameReader};

/// Keeps a link to peer `id` at `addr` and sends it what arrives on `rx`.
pub(crate) async fn link(
    endpoint: quinn::Endpoint,
    config: quinn::ClientConfig,
    me: u64,
    id: u64,
    addr: SocketAddr,
    mut rx: mpsc::Receiver<PeerFrame>,
) {
    let mut backoff = Duration::from_millis(50);
    let name = format!("n{id}.warren");
    loop {
        let connected = async {
            let conn = endpoint.connect_with(config.clone(), addr, &name)?.await?;
            let mut stream = conn.open_uni().await?;
            frame::write(&mut stream, &PeerFrame::Hello { from: me }).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((conn, stream))
        };
        let (conn, mut stream) = match connected.await {
            Ok(link) => link,
            Err(e) => {
                tracing::debug!("link to n{id} at {addr} failed: {e}");
                // Frames queued meanwhile are stale: drop them.
                while rx.try_recv().is_ok() {}
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        // One buffer for the link's life: frames are encoded straight into it.
        let mut bytes = Vec::new();
        loop {
            let Some(first) = rx.recv().await else {
                conn.close(0u32.into(), b"shutting down");
                return;
            };
            // Everything queued goes out in one write.
            bytes.clear();
            frame::encode_into(&first, &mut bytes);
            while bytes.len() < 1 << 20 {
                match rx.try_recv() {
                    Ok(next) => frame::encode_into(&next, &mut bytes),
                    Err(_) => break,
                }
            }
            if stream.write_all(&bytes).await.is_err() {
                break;
            }
        }
        conn.close(0u32.into(), b"link reset");
    }
}

/// Reads a peer's incoming streams and hands their frames to the core.
pub(crate) async fn serve_incoming(
    conn: quinn::Connection,
    members: Vec<u64>,
    core: mpsc::Sender<Event>,
) {
    let peer = match tls::peer_node_id(&conn) {
        Ok(id) if members.contains(&id) => id,
        Ok(id) => {
            conn.close(1u32.into(), format!("n{id} is not a member of this cluster").as_bytes());
            return;
        }
        Err(e) => {
            conn.close(1u32.into(), e.to_string().as_bytes());
            return;
        }
    };
    while let Ok(stream) = conn.accept_uni().await {
        let core = core.clone();
        let conn = conn.clone();
        tokio::spawn(async move {
            // Appends arrive in batches: read them 256 KiB at a time.
            let mut stream = FrameReader::new(stream, 256 << 10, FRAME_BYTES_MAX);
            match stream.next::<PeerFrame>().await {
                Ok(Some(PeerFrame::Hello { from })) if from == peer => {}
                _ => {
                    conn.close(
                        2u32.into(),
                        format!("the stream must start with Hello from n{peer}").as_bytes(),
                    );
                    return;
                }
            }
            loop {
                match stream.next::<PeerFrame>().await {
                    Ok(Some(PeerFrame::Hello { .. })) | Ok(None) => return,
                    Ok(Some(PeerFrame::Raft(m))) if m.from.0 != peer => {
                        let why = format!("n{peer} sent a message in the name of {}", m.from);
                        conn.close(4u32.into(), why.as_bytes());
                        return;
                    }
                    Ok(Some(frame)) => {
                        let input = Event::Input(Input::Peer { from: peer, frame });
                        if core.send(input).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        conn.close(3u32.into(), format!("bad frame: {e}").as_bytes());
                        return;
                    }
                }
            }
        });
    }
}

/// The peer ALPN, for the accept loop.
pub(crate) fn is_peer_alpn(alpn: Option<&[u8]>) -> bool {
    alpn == Some(ALPN_PEER)
}
