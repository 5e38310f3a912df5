//! A running node (`warren serve`): the pure cores behind a driver.
//!
//! - `config` — the node's configuration file, checked at start.
//! - `engine` — the node engine: every decision, no I/O (the simulator
//!   drives it too).
//! - `driver` — the tokio driver of the engine: sockets, disk, timers.
//! - `peer` — links between members over QUIC.
//! - `server` — Warren's client front end over QUIC (ZooKeeper's, over
//!   TCP, is `crate::zookeeper::server`).
//!
//! [`serve`] opens the data directory (recovering it), rebuilds the state
//! machine, binds one UDP endpoint for both peers and clients (told apart by
//! ALPN, both with mutual TLS), starts the driver and a ticker, and runs
//! until the process is told to stop or the driver fails. `warren serve`
//! runs it on a current-thread runtime (see `driver`).

pub mod config;
pub(crate) mod driver;
pub mod engine;
pub mod peer;
pub(crate) mod server;

pub use config::{ConfigError, NodeConfig, Timing};
pub use driver::DriverError;

use crate::storage::{RestartError, Storage, StorageError, rebuild};
use crate::tls::{self, Tls, TlsError};
use driver::{Driver, Event};
use engine::Input;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::mpsc;

/// Why a node could not start or stopped.
#[derive(Debug, Error)]
pub enum NodeError {
    #[error("{0}")]
    Tls(#[from] TlsError),
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error("the data directory does not restore: {0}")]
    Restart(#[from] RestartError),
    #[error("cannot listen on {addr}: {source}; is another process using the port?")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Driver(#[from] DriverError),
    #[error("the node's driver stopped unexpectedly: {0}")]
    Crashed(String),
}

/// Runs a node until SIGINT or SIGTERM (clean stop) or a failure.
pub async fn serve(config: NodeConfig) -> Result<(), NodeError> {
    let tls = Arc::new(Tls::load(&config.tls)?);
    let (mut storage, restored) = Storage::open(&config.data_dir)?;
    let place = config.peers.keys().filter(|&&peer| peer < config.id).count() as u64;
    storage.stagger_flushes(place, config.peers.len() as u64 + 1);
    let sm = rebuild(&restored, config.limits, Some(&config.plugin_cache()))?;
    let endpoint = endpoint(&config, &tls)?;

    let (inputs_tx, inputs) = mpsc::channel(crate::limits::NODE_EVENTS_MAX);
    let mut peers = BTreeMap::new();
    for (&id, &addr) in &config.peers {
        let (tx, rx) = mpsc::channel(crate::limits::PEER_FRAMES_MAX);
        peers.insert(id, tx);
        tokio::spawn(peer::link(
            endpoint.clone(),
            tls.peer_client_config(),
            config.id,
            id,
            addr,
            rx,
        ));
    }
    let driver = Driver::new(&config, storage, restored, sm, inputs, inputs_tx.clone(), peers);
    let mut core = tokio::spawn(driver.run());

    let tick = Duration::from_millis(config.timing.tick_ms);
    let ticker = inputs_tx.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if ticker.send(Event::Input(Input::Tick)).await.is_err() {
                return;
            }
        }
    });

    let members = config.members();
    // Connection ids, shared by every front end.
    let ids = Arc::new(AtomicU64::new(1));
    let accept = {
        let endpoint = endpoint.clone();
        let inputs = inputs_tx.clone();
        let ids = ids.clone();
        async move {
            while let Some(incoming) = endpoint.accept().await {
                let inputs = inputs.clone();
                let members = members.clone();
                let ids = ids.clone();
                tokio::spawn(async move {
                    let conn = match incoming.await {
                        Ok(conn) => conn,
                        Err(e) => {
                            tracing::debug!("handshake failed: {e}");
                            return;
                        }
                    };
                    if peer::is_peer_alpn(tls::negotiated_alpn(&conn).as_deref()) {
                        peer::serve_incoming(conn, members, inputs).await;
                    } else {
                        server::serve_client(conn, inputs, ids).await;
                    }
                });
            }
        }
    };
    tokio::spawn(accept);

    let zookeeper = &config.zookeeper;
    if zookeeper.listen.is_some() || zookeeper.tls_listen.is_some() {
        use crate::zookeeper::server::{Front, listen, listen_tls};
        // One front for both ports: the per-address cap counts both.
        let front = Arc::new(Front::new(&config, inputs_tx.clone(), ids.clone()));
        if let Some(addr) = zookeeper.listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| NodeError::Bind { addr, source })?;
            tokio::spawn(listen(listener, front.clone()));
            tracing::info!("serving ZooKeeper clients on {addr}");
        }
        if let Some(addr) = zookeeper.tls_listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| NodeError::Bind { addr, source })?;
            tokio::spawn(listen_tls(listener, front, tls.clone(), zookeeper.tls_client_auth));
            tracing::info!("serving ZooKeeper clients over TLS on {addr}");
        }
    }

    let reload = {
        let tls = tls.clone();
        let endpoint = endpoint.clone();
        async move { reload_on_hangup(tls, endpoint).await }
    };
    tokio::spawn(reload);

    let stop = shutdown_signal();
    tokio::select! {
        result = &mut core => {
            endpoint.close(0u32.into(), b"node stopped");
            match result {
                Ok(result) => result.map_err(NodeError::from),
                Err(e) => Err(NodeError::Crashed(e.to_string())),
            }
        }
        () = stop => {
            // The core finishes the round it is in (what it synced stays
            // synced) and lets the storage go.
            let _ = inputs_tx.send(Event::Stop).await;
            let _ = tokio::time::timeout(Duration::from_secs(5), &mut core).await;
            endpoint.close(0u32.into(), b"shutting down");
            // Give the close a moment to reach peers and clients; nothing
            // unsynced was acknowledged, so there is nothing else to wait for.
            let _ = tokio::time::timeout(Duration::from_millis(500), endpoint.wait_idle()).await;
            Ok(())
        }
    }
}

/// The node's UDP endpoint, for peers and clients alike. Its stateless
/// reset key is derived from the node's private key, so it is the same
/// after a restart: a peer still writing into a connection of the node's
/// previous process gets a stateless reset at its first packet and dials
/// again at once, instead of waiting for the connection to time out.
fn endpoint(config: &NodeConfig, tls: &Tls) -> Result<quinn::Endpoint, NodeError> {
    let bind = |source| NodeError::Bind { addr: config.listen, source };
    let key = std::fs::read(&config.tls.key).map_err(bind)?;
    let mut material = b"warren stateless reset key\0".to_vec();
    material.extend_from_slice(&key);
    let secret = ring::digest::digest(&ring::digest::SHA256, &material);
    let reset_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_ref());
    let mut endpoint_config = quinn::EndpointConfig::new(Arc::new(reset_key));
    // Connection ids must also validate across a restart, or the new
    // process drops the old connection's packets without a reset.
    let mut cid_key = [0u8; 8];
    cid_key.copy_from_slice(&secret.as_ref()[..8]);
    let cid_key = u64::from_le_bytes(cid_key);
    endpoint_config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    let socket = std::net::UdpSocket::bind(config.listen).map_err(bind)?;
    quinn::Endpoint::new(
        endpoint_config,
        Some(tls.server_config()),
        socket,
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(bind)
}

/// Waits for SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Reloads certificates and the CA on SIGHUP: new handshakes use them.
async fn reload_on_hangup(tls: Arc<Tls>, endpoint: quinn::Endpoint) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else { return };
        while hup.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => {
                    endpoint.set_server_config(Some(tls.server_config()));
                    tracing::info!("certificates reloaded");
                }
                Err(e) => tracing::warn!("certificates not reloaded: {e}"),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (tls, endpoint);
    }
}
