//! The built-in Prometheus endpoint (`metrics_listen`): `metrics_path` in the Prometheus text
//! format (OpenMetrics when the scraper asks for it), `/healthz` and `/readyz` for probes.
//! Everything is read at request time from what the admin console reads ([`exporter`]); the data
//! path gains no lock and no allocation.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod exporter;
pub mod http;
pub mod names;
pub mod ready;

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::Host;

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// `metrics_listen` names nothing this machine can bind.
    #[error("metrics_listen {listen}: {source}")]
    Bind {
        /// The setting as written.
        listen: String,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// What every request handler shares.
pub struct App {
    host: Arc<dyn Host>,
    registry: Registry,
    ready: ready::Readiness,
}

impl App {
    /// The endpoint's state for `host`.
    pub fn new(host: Arc<dyn Host>) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(exporter::Exporter::new(Arc::clone(&host))));
        App {
            host,
            registry,
            ready: ready::Readiness::default(),
        }
    }

    /// The whole page, in the Prometheus text format or (`openmetrics`) OpenMetrics.
    pub fn render(&self, openmetrics: bool) -> Result<String, std::fmt::Error> {
        let mut body = String::with_capacity(16 * 1024);
        if openmetrics {
            prometheus_client::encoding::text::encode(&mut body, &self.registry)?;
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut body, &self.registry)?;
        }
        Ok(body)
    }
}

/// A running endpoint; [`Endpoint::stop`] ends it gracefully.
pub struct Endpoint {
    /// The address bound.
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Endpoint {
    /// Binds `listen` (`host:port`; `*` means every IPv4 address) and starts serving `host`.
    pub async fn start(listen: &str, host: Arc<dyn Host>) -> Result<Endpoint, MetricsError> {
        let bind_err = |source| MetricsError::Bind {
            listen: listen.to_owned(),
            source,
        };
        let (name, port) = listen
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
            .ok_or_else(|| bind_err(std::io::ErrorKind::InvalidInput.into()))?;
        let name = name.trim_start_matches('[').trim_end_matches(']');
        let name = if name == "*" { "0.0.0.0" } else { name };
        let listener = TcpListener::bind((name, port)).await.map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        let (stop, stopped) = watch::channel(false);
        let phase = host.shutdown().subscribe();
        let app = Arc::new(App::new(host));
        let task = tokio::spawn(http::serve(listener, app, stopped, phase));
        tracing::info!("metrics endpoint listening on http://{addr}");
        Ok(Endpoint { addr, stop, task })
    }

    /// Stops accepting, lets scrapes in flight finish (a few seconds at most) and returns.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
