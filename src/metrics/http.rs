//! The endpoint's HTTP/1.1 server (hyper): GET or HEAD of `metrics_path`, `/healthz` and
//! `/readyz`; anything else is 404 (405 for other methods). Stops accepting when told to or at an
//! immediate shutdown, then lets requests in flight finish.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ACCEPT, ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::App;
use crate::config::Key;
use crate::shutdown::Phase;

/// A slow or silent client may hold a connection this long before its request headers arrive.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests in flight at stop get this long to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

const PROMETHEUS_TEXT: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Accepts connections until `stop` turns true or the phase becomes immediate.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    mut stop: watch::Receiver<bool>,
    mut phase: watch::Receiver<Phase>,
) {
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "metrics endpoint: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let app = Arc::clone(&app);
                let service = service_fn(move |req| {
                    let app = Arc::clone(&app);
                    async move { Ok::<_, Infallible>(respond(&app, req).await) }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            r = stop.changed() => if r.is_err() || *stop.borrow() { break },
            r = phase.changed() => if r.is_err() || *phase.borrow() == Phase::Immediate { break },
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
}

async fn respond(app: &App, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut res = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD\n".to_owned(),
        );
        res.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return res;
    }
    let config = app.host.config();
    let metrics_path = config
        .pgbouncer
        .text(Key::MetricsPath)
        .unwrap_or("/metrics");
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".to_owned()),
        "/readyz" => match app.ready.check(app.host.as_ref()).await {
            Ok(()) => text(StatusCode::OK, "ready\n".to_owned()),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
            ),
        },
        path if path == metrics_path => {
            let openmetrics = req.headers().get_all(ACCEPT).iter().any(|v| {
                v.to_str()
                    .is_ok_and(|v| v.contains("application/openmetrics-text"))
            });
            match app.render(openmetrics) {
                Ok(body) => {
                    let kind = if openmetrics {
                        OPENMETRICS_TEXT
                    } else {
                        PROMETHEUS_TEXT
                    };
                    let mut res = Response::new(Full::new(Bytes::from(body)));
                    res.headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static(kind));
                    res
                }
                Err(_) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "could not encode the metrics\n".to_owned(),
                ),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".to_owned()),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}
