//! Prepared statements at the byte level, with messages built by `bouncectl::protocol`: a name
//! reused with other text (42P05), and errors in a pipeline that skip the pooler's own Parse and
//! Close (issue 6).

use std::time::Duration;

use bouncectl::protocol::backend::ErrorFields;
use bouncectl::protocol::frontend::{self, Target};
use bouncectl::protocol::walk::Walk;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::bouncer::TestBouncer;
use crate::support::client::RawClient;
use crate::support::postgres::{MD5_USER, PASSWORD, TempPostgres};

/// A reply as (tag, SQLSTATE for ErrorResponse or the first DataRow cell).
type Reply = (char, String);

struct Raw {
    stream: TcpStream,
    buf: BytesMut,
}

impl Raw {
    async fn connect(port: u16) -> Raw {
        let login = [("user", MD5_USER), ("database", "postgres")];
        Raw {
            stream: RawClient::connect(port, &login, PASSWORD)
                .await
                .unwrap_or_else(|e| panic!("login failed: {e:?}"))
                .into_stream(),
            buf: BytesMut::new(),
        }
    }

    async fn message(&mut self) -> (u8, Vec<u8>) {
        loop {
            let mut walk = Walk::new(&self.buf, 1 << 24);
            if let Some(m) = walk.next_message().unwrap() {
                let out = (m.tag, m.body.to_vec());
                let n = walk.consumed();
                let _ = self.buf.split_to(n);
                return out;
            }
            let n = self.stream.read_buf(&mut self.buf).await.unwrap();
            assert!(n > 0, "the pooler closed the connection");
        }
    }

    /// Sends `out` and collects the replies up to the `syncs`-th ReadyForQuery.
    async fn round_trip(&mut self, out: &BytesMut, syncs: usize) -> Vec<Reply> {
        self.stream.write_all(out).await.unwrap();
        let mut replies = Vec::new();
        let mut seen = 0;
        while seen < syncs {
            let (tag, body) = self.message().await;
            let detail = match tag {
                b'E' => String::from_utf8_lossy(ErrorFields::parse(&body).unwrap().code().unwrap())
                    .into_owned(),
                b'D' => String::from_utf8_lossy(&body[6..]).into_owned(),
                _ => String::new(),
            };
            if tag == b'Z' {
                seen += 1;
            }
            replies.push((tag as char, detail));
        }
        replies
    }
}

fn tags(replies: &[Reply]) -> String {
    replies.iter().map(|(t, _)| *t).collect()
}

fn run(out: &mut BytesMut, statement: &str) {
    frontend::bind(out, "", statement, &[], &[], &[]).unwrap();
    frontend::execute(out, "", 0).unwrap();
}

#[tokio::test]
async fn a_name_reused_with_other_text_is_refused_like_postgresql() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "default_pool_size = 1").await;
    let mut c = Raw::connect(bouncer.port).await;
    let mut out = BytesMut::new();
    frontend::parse(&mut out, "s1", "SELECT 1", &[]).unwrap();
    frontend::sync(&mut out);
    assert_eq!(tags(&c.round_trip(&out, 1).await), "1Z");

    let mut out = BytesMut::new();
    frontend::parse(&mut out, "s1", "SELECT 2", &[]).unwrap();
    run(&mut out, "s1");
    frontend::sync(&mut out);
    let got = c.round_trip(&out, 1).await;
    assert_eq!(tags(&got), "EZ", "{got:?}");
    assert_eq!(got[0].1, "42P05");

    // The same text again is accepted without a server round trip; the statement still runs.
    let mut out = BytesMut::new();
    frontend::parse(&mut out, "s1", "SELECT 1", &[]).unwrap();
    run(&mut out, "s1");
    frontend::close(&mut out, Target::Statement, "s1").unwrap();
    frontend::sync(&mut out);
    let got = c.round_trip(&out, 1).await;
    assert_eq!(tags(&got), "12DC3Z", "{got:?}");
    assert_eq!(got[2].1, "1");
}

#[tokio::test]
async fn an_error_skips_the_poolers_own_parse_and_close_too() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer =
        TestBouncer::start(&pg, "default_pool_size = 1\nmax_prepared_statements = 1").await;
    let mut c = Raw::connect(bouncer.port).await;
    // n2 then n3: the one-statement LRU keeps only n3 on the server.
    let mut out = BytesMut::new();
    frontend::parse(&mut out, "n2", "SELECT 6", &[]).unwrap();
    frontend::parse(&mut out, "n3", "SELECT 7", &[]).unwrap();
    frontend::sync(&mut out);
    assert_eq!(tags(&c.round_trip(&out, 1).await), "11Z");

    // The division fails; the Close of n3 and the Parse of n2 the pooler adds after it are
    // skipped, and so is the client's Parse of n4.
    let mut out = BytesMut::new();
    frontend::parse(&mut out, "", "SELECT 1/0", &[]).unwrap();
    run(&mut out, "");
    run(&mut out, "n2");
    frontend::parse(&mut out, "n4", "SELECT 8", &[]).unwrap();
    frontend::sync(&mut out);
    let got = c.round_trip(&out, 1).await;
    // The constant division fails at Bind (planning folds it).
    assert_eq!(tags(&got), "1EZ", "{got:?}");
    assert_eq!(got[1].1, "22012");

    // n4 never existed, as in PostgreSQL; n2 and n3 are prepared again as needed.
    let mut out = BytesMut::new();
    run(&mut out, "n4");
    frontend::sync(&mut out);
    run(&mut out, "n2");
    frontend::sync(&mut out);
    run(&mut out, "n3");
    frontend::sync(&mut out);
    run(&mut out, "n2");
    frontend::sync(&mut out);
    let got = c.round_trip(&out, 4).await;
    assert_eq!(tags(&got), "EZ2DCZ2DCZ2DCZ", "{got:?}");
    assert_eq!(got[0].1, "26000");
    let cells: Vec<&str> = got
        .iter()
        .filter(|(t, _)| *t == 'D')
        .map(|(_, d)| d.as_str())
        .collect();
    assert_eq!(cells, ["6", "7", "6"]);
}

#[tokio::test]
async fn a_prepare_needs_no_server_while_every_server_is_busy() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "default_pool_size = 1").await;
    // The only server stays in another client's transaction throughout.
    let mut holder = Raw::connect(bouncer.port).await;
    let mut begin = BytesMut::new();
    frontend::query(&mut begin, "BEGIN").unwrap();
    assert_eq!(tags(&holder.round_trip(&begin, 1).await), "CZ");

    // libpq's PQprepare (Parse + Sync) and a Close: answered by the pooler at once.
    let mut c = Raw::connect(bouncer.port).await;
    let mut out = BytesMut::new();
    frontend::parse(&mut out, "s1", "SELECT $1::int + 1", &[]).unwrap();
    frontend::parse(&mut out, "broken", "SELEKT 1", &[]).unwrap();
    frontend::sync(&mut out);
    let replies = tokio::time::timeout(Duration::from_secs(5), c.round_trip(&out, 1))
        .await
        .expect("a prepare waited for a server");
    assert_eq!(tags(&replies), "11Z");
    let mut out = BytesMut::new();
    frontend::close(&mut out, Target::Statement, "s1").unwrap();
    frontend::parse(&mut out, "s1", "SELECT 'other'", &[]).unwrap();
    frontend::sync(&mut out);
    assert_eq!(tags(&c.round_trip(&out, 1).await), "31Z");

    // Once the server is free the statements run; the broken one fails at its first use.
    let mut commit = BytesMut::new();
    frontend::query(&mut commit, "COMMIT").unwrap();
    assert_eq!(tags(&holder.round_trip(&commit, 1).await), "CZ");
    let mut out = BytesMut::new();
    run(&mut out, "s1");
    frontend::sync(&mut out);
    run(&mut out, "broken");
    frontend::sync(&mut out);
    let replies = c.round_trip(&out, 2).await;
    assert_eq!(tags(&replies), "2DCZEZ", "{replies:?}");
    assert_eq!(replies[1].1, "other");
    assert_eq!(replies[4].1, "42601");
}
