//! Item 8: monitoring answers. The admin console runs SHOW STATS for the `--admin-url` user (a
//! stats or admin user), and the Prometheus endpoint answers `GET metrics_path` with 200 when
//! `metrics_listen` is configured (a plain TCP exchange: the status line is all we read).

use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};

use super::probes::{connect, ms};
use super::{Findings, Inputs, Outcome, Status};
use crate::cli::admin_client::{self, Target};
use crate::config::Key;

/// Item 8: the admin console answers SHOW STATS (`--admin-url`), and the metrics endpoint
/// answers 200 when `metrics_listen` is configured.
pub async fn check(inputs: &Inputs) -> Outcome {
    let mut findings = Findings::default();
    match &inputs.admin {
        None => findings.note(Status::Skip, "SHOW STATS needs --admin-url URL"),
        Some(admin) => match show_stats(admin, inputs.timeout).await {
            Ok(rows) => findings.note(
                Status::Pass,
                format!(
                    "SHOW STATS as {}: {rows} database{}",
                    admin.get_user().unwrap_or("?"),
                    if rows == 1 { "" } else { "s" }
                ),
            ),
            Err(why) => findings.note(Status::Fail, why),
        },
    }
    let config = inputs.config.config().ok();
    match config.and_then(|c| c.pgbouncer.metrics_listen().map(|l| (c, l))) {
        None if config.is_some() => findings.note(Status::Skip, "metrics_listen not set"),
        None => findings.note(Status::Skip, "metrics need --config FILE (metrics_listen)"),
        Some((config, listen)) => {
            let path = config
                .pgbouncer
                .text(Key::MetricsPath)
                .unwrap_or("/metrics");
            match get_status(listen, path, inputs.timeout).await {
                Ok(line) if line.split_whitespace().nth(1) == Some("200") => {
                    findings.note(Status::Pass, format!("GET {listen}{path}: {line}"));
                }
                Ok(line) => findings.note(Status::Fail, format!("GET {listen}{path}: {line}")),
                Err(why) => findings.note(Status::Fail, format!("GET {listen}{path}: {why}")),
            }
        }
    }
    findings.outcome()
}

async fn show_stats(admin: &tokio_postgres::Config, timeout: Duration) -> Result<usize, String> {
    let target = Target::Console("--admin-url");
    let client = connect(admin, timeout)
        .await
        .map_err(|f| f.explain(admin, target, timeout))?;
    match tokio::time::timeout(timeout, admin_client::show(&client, admin, "STATS")).await {
        Err(_) => Err(format!("SHOW STATS got no answer within {}", ms(timeout))),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Ok(Ok(result)) => Ok(result.rows.len()),
    }
}

/// Sends `GET path` to `listen` (`host:port`; a wildcard host means this machine) and returns
/// the response's status line.
async fn get_status(listen: &str, path: &str, timeout: Duration) -> Result<String, String> {
    let (host, port) = listen
        .rsplit_once(':')
        .ok_or_else(|| format!("metrics_listen {listen:?} is not host:port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = match host {
        "" | "*" | "0.0.0.0" => "127.0.0.1",
        "::" => "::1",
        other => other,
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("metrics_listen {listen:?} has no valid port"))?;
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect((host, port)).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut line = String::new();
        // A status line is short; a server that sends no newline must not fill memory.
        tokio::io::BufReader::new(stream.take(4096))
            .read_line(&mut line)
            .await?;
        Ok::<_, std::io::Error>(line.trim_end().to_owned())
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => Err(format!("no answer within {}", ms(timeout))),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(line)) if line.is_empty() => Err("closed without a status line".to_owned()),
        Ok(Ok(line)) => Ok(line),
    }
}
