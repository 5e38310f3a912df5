//! Warren as a system under test: one [`Client`] per session.

use super::system::{OpError, ReadMode, Session, System, Watch};
use tokio::sync::OnceCell;
use warren_client::wire::Failure;
use warren_client::{
    Client, ClientConfig, Connector, CreateMode, Error, InstallOptions, WatchStream,
};

/// A Warren cluster, reached with a client configuration. Its sessions
/// share one QUIC endpoint, as many sessions in one process should.
pub struct Warren {
    config: ClientConfig,
    connector: OnceCell<Connector>,
}

impl Warren {
    pub fn new(config: ClientConfig) -> Warren {
        Warren { config, connector: OnceCell::new() }
    }
}

impl System for Warren {
    type Session = WarrenSession;

    fn name(&self) -> &str {
        "warren"
    }

    async fn connect(&self) -> Result<WarrenSession, OpError> {
        let connector = self
            .connector
            .get_or_try_init(|| async { Connector::new(&self.config) })
            .await
            .map_err(op_error)?;
        connector.connect().await.map(WarrenSession).map_err(op_error)
    }
}

/// One Warren session.
#[derive(Clone)]
pub struct WarrenSession(pub Client);

/// A persistent watch on one node.
pub struct WarrenWatch(WatchStream);

impl Watch for WarrenWatch {
    async fn next(&mut self) -> Option<u64> {
        self.0.next().await.map(|event| event.zxid.0)
    }
}

impl Session for WarrenSession {
    type Watch = WarrenWatch;

    async fn create(&self, path: &str, data: &[u8], sequential: bool) -> Result<(), OpError> {
        let mode =
            if sequential { CreateMode::PersistentSequential } else { CreateMode::Persistent };
        self.0.create(path, data, mode).await.map(drop).map_err(op_error)
    }

    async fn set(&self, path: &str, data: &[u8]) -> Result<u64, OpError> {
        self.0.set_data(path, data, None).await.map(|stat| stat.mzxid.0).map_err(op_error)
    }

    async fn get(&self, path: &str, read: ReadMode) -> Result<usize, OpError> {
        let answer = match read {
            ReadMode::Local => self.0.get_data(path).await,
            ReadMode::Sync => match self.0.sync(path).await {
                Ok(()) => self.0.get_data(path).await,
                Err(e) => Err(e),
            },
            ReadMode::Linearizable => self.0.get_data_linearizable(path).await,
        };
        answer.map(|(data, _)| data.len()).map_err(op_error)
    }

    async fn delete(&self, path: &str) -> Result<(), OpError> {
        self.0.delete(path, None).await.map_err(op_error)
    }

    async fn children(&self, path: &str) -> Result<Vec<String>, OpError> {
        self.0.get_children(path).await.map(|(names, _)| names).map_err(op_error)
    }

    async fn watch(&self, path: &str) -> Result<WarrenWatch, OpError> {
        self.0.watch(path, false).await.map(WarrenWatch).map_err(op_error)
    }

    async fn install_plugin(&self, name: &str, component: &[u8]) -> Result<(), OpError> {
        let options = InstallOptions::default();
        self.0.install_plugin(name, component, options).await.map(drop).map_err(op_error)
    }

    async fn bind_validator(&self, name: &str, prefix: &str, config: &[u8]) -> Result<(), OpError> {
        self.0.bind_plugin(name, prefix, config).await.map(drop).map_err(op_error)
    }

    async fn unbind_validator(&self, name: &str, prefix: &str) -> Result<(), OpError> {
        self.0.unbind_plugin(name, prefix).await.map(drop).map_err(op_error)
    }

    async fn remove_plugin(&self, name: &str) -> Result<(), OpError> {
        self.0.remove_plugin(name).await.map_err(op_error)
    }

    async fn invoke(&self, name: &str, path: &str, args: &[u8]) -> Result<(), OpError> {
        self.0.invoke(name, path, args).await.map(drop).map_err(op_error)
    }

    async fn close(self) -> Result<(), OpError> {
        self.0.close().await.map_err(op_error)
    }
}

/// A client error as the benchmark counts it: API errors by ZooKeeper's
/// code name, the others by variant.
fn op_error(e: Error) -> OpError {
    let kind = match &e {
        Error::Api(api) => format!("{:?}", api.code()),
        Error::ConnectionLoss { .. } => "ConnectionLoss".into(),
        Error::Failed(Failure::Api(api)) => format!("{:?}", api.code()),
        Error::Failed(Failure::OutcomeUnknown { .. }) => "OutcomeUnknown".into(),
        Error::Failed(Failure::Unavailable { .. }) => "Unavailable".into(),
        Error::Failed(Failure::Throttled { .. }) => "Throttled".into(),
        Error::SessionExpired { .. } => "SessionExpired".into(),
        Error::NoServer { .. } => "NoServer".into(),
        Error::Timeout { .. } => "Timeout".into(),
        Error::Setup(_) => "Setup".into(),
        Error::TooLarge { .. } => "TooLarge".into(),
        Error::Closed => "Closed".into(),
    };
    let fatal = matches!(e, Error::SessionExpired { .. } | Error::Closed);
    OpError { kind, message: e.to_string(), fatal }
}
