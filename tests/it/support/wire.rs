//! Wire: a raw socket speaking as much of the protocol as a test wants — partial packets, a login
//! left halfway, a pipeline never synced, SCRAM messages built by hand — with every read bounded
//! by a deadline, so a test never hangs on a pooler that stays silent.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use bouncectl::auth::scram::{ClientCredential, MECHANISM, ScramClient};
use bouncectl::auth::{Md5Credential, md5_response};
use bouncectl::protocol::backend::{Authentication, BackendKeyData, ErrorFields};
use bouncectl::protocol::walk::Walk;
use bouncectl::protocol::{frontend, startup};

/// One message: tag and body.
pub type Msg = (u8, Vec<u8>);

/// How long any single read may wait before the test fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// A raw client socket.
pub struct Wire {
    /// The socket (tests may write partial bytes on it directly).
    pub stream: TcpStream,
    buf: BytesMut,
    /// The BackendKeyData of the login (process id, secret), for CancelRequests.
    pub key: Option<(i32, [u8; 4])>,
}

/// (SQLSTATE, message) of an ErrorResponse body.
pub fn error_of(body: &[u8]) -> (String, String) {
    let f = ErrorFields::parse(body).unwrap();
    let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
    (text(f.code()), text(f.message()))
}

/// The bytes of a StartupMessage for `user` and `database`.
pub fn startup_bytes(user: &str, database: &str) -> BytesMut {
    let mut out = BytesMut::new();
    startup::startup_message(
        &mut out,
        startup::PROTOCOL_3_0,
        [("user", user), ("database", database)],
    )
    .unwrap();
    out
}

/// The bytes of a simple Query.
pub fn query_bytes(sql: &str) -> BytesMut {
    let mut out = BytesMut::new();
    frontend::query(&mut out, sql).unwrap();
    out
}

/// Parse, Bind and Execute of `sql` on the unnamed statement and portal (no Sync).
pub fn extended_bytes(sql: &str) -> BytesMut {
    let mut out = BytesMut::new();
    frontend::parse(&mut out, "", sql, &[]).unwrap();
    frontend::bind(&mut out, "", "", &[], &[], &[]).unwrap();
    frontend::execute(&mut out, "", 0).unwrap();
    out
}

impl Wire {
    /// A bare TCP connection to 127.0.0.1:`port`, nothing sent.
    pub async fn connect(port: u16) -> Wire {
        Wire {
            stream: TcpStream::connect(("127.0.0.1", port)).await.unwrap(),
            buf: BytesMut::new(),
            key: None,
        }
    }

    /// Connects and logs in as `user` to `database`, answering cleartext, md5 or SCRAM with
    /// `password`. Err: the (SQLSTATE, message) of the refusal.
    pub async fn login(
        port: u16,
        user: &str,
        database: &str,
        password: &str,
    ) -> Result<Wire, (String, String)> {
        let mut wire = Wire::connect(port).await;
        wire.send(&startup_bytes(user, database)).await;
        let mut scram: Option<ScramClient> = None;
        loop {
            let Some((tag, body)) = wire.recv().await else {
                return Err(("EOF".into(), "closed during login".into()));
            };
            let mut out = BytesMut::new();
            match tag {
                b'R' => match Authentication::parse(&body).unwrap() {
                    Authentication::Ok => continue,
                    Authentication::CleartextPassword => {
                        frontend::password_message(&mut out, password.as_bytes()).unwrap();
                    }
                    Authentication::Md5Password { salt } => {
                        let answer = md5_response(user, Md5Credential::Password(password), salt);
                        frontend::password_message(&mut out, answer.as_bytes()).unwrap();
                    }
                    Authentication::Sasl(_) => {
                        let client =
                            ScramClient::new(ClientCredential::Password(password.into())).unwrap();
                        let first = client.client_first();
                        frontend::sasl_initial_response(&mut out, MECHANISM, Some(&first)).unwrap();
                        scram = Some(client);
                    }
                    Authentication::SaslContinue(data) => {
                        let reply = scram.as_mut().unwrap().handle_server_first(data).unwrap();
                        frontend::sasl_response(&mut out, &reply).unwrap();
                    }
                    Authentication::SaslFinal(data) => {
                        scram.as_mut().unwrap().verify_server_final(data).unwrap();
                        continue;
                    }
                    other => panic!("unexpected auth request {other:?}"),
                },
                b'E' => return Err(error_of(&body)),
                b'K' => {
                    let k = BackendKeyData::parse(&body).unwrap();
                    wire.key = Some((k.process_id, k.secret_key.try_into().unwrap()));
                    continue;
                }
                b'Z' => return Ok(wire),
                _ => continue,
            }
            wire.send(&out).await;
        }
    }

    /// Writes `bytes` (errors ignored: the peer may have closed).
    pub async fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// The next whole message; `None` when the peer closed (or reset) the connection.
    pub async fn recv(&mut self) -> Option<Msg> {
        let deadline = tokio::time::Instant::now() + READ_TIMEOUT;
        loop {
            let mut walk = Walk::new(&self.buf, 1 << 30);
            if let Some(m) = walk.next_message().unwrap() {
                let msg = (m.tag, m.body.to_vec());
                let used = walk.consumed();
                let _ = self.buf.split_to(used);
                return Some(msg);
            }
            let read = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf));
            match read.await {
                Ok(Ok(0) | Err(_)) => return None,
                Ok(Ok(_)) => {}
                Err(_) => panic!("no message within {READ_TIMEOUT:?}"),
            }
        }
    }

    /// Reads up to the next ReadyForQuery; `None` when the connection closed first.
    pub async fn until_ready(&mut self) -> Option<Vec<Msg>> {
        let mut got = Vec::new();
        loop {
            let msg = self.recv().await?;
            let done = msg.0 == b'Z';
            got.push(msg);
            if done {
                return Some(got);
            }
        }
    }

    /// Reads until an ErrorResponse (returned) or the end of the connection (`None`).
    pub async fn next_error(&mut self) -> Option<(String, String)> {
        loop {
            let (tag, body) = self.recv().await?;
            if tag == b'E' {
                return Some(error_of(&body));
            }
        }
    }

    /// Runs one simple query; the first column of each row, or the error.
    pub async fn query(&mut self, sql: &str) -> Result<Vec<Option<String>>, (String, String)> {
        self.send(&query_bytes(sql)).await;
        let msgs = self
            .until_ready()
            .await
            .ok_or_else(|| ("EOF".to_owned(), "closed".to_owned()))?;
        let mut rows = Vec::new();
        for (tag, body) in msgs {
            match tag {
                b'E' => return Err(error_of(&body)),
                b'D' => {
                    let row = bouncectl::protocol::backend::DataRow::parse(&body).unwrap();
                    rows.push(
                        row.values()
                            .next()
                            .flatten()
                            .map(|v| String::from_utf8_lossy(v).into_owned()),
                    );
                }
                _ => {}
            }
        }
        Ok(rows)
    }
}
