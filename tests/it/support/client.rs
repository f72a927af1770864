//! RawClient: a minimal PostgreSQL client on bouncectl::protocol, for exact startup packets (e.g.
//! lib/pq's `extra_float_digits`) and the exact RowDescription (names and type OIDs) of a result.

use bytes::BytesMut;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use bouncectl::auth::{Md5Credential, md5_response};
use bouncectl::protocol::backend::results::RowDescription;
use bouncectl::protocol::backend::{Authentication, ErrorFields};
use bouncectl::protocol::walk::Walk;
use bouncectl::protocol::{frontend, startup};

/// One message from the server.
pub type Msg = (u8, Vec<u8>);

/// What one simple query returned.
#[derive(Debug, Default)]
pub struct QueryResult {
    /// (name, type OID) of each column of the last RowDescription.
    pub columns: Vec<(String, u32)>,
    /// Rows as text cells.
    pub rows: Vec<Vec<Option<String>>>,
    /// (SQLSTATE, message) of an ErrorResponse.
    pub error: Option<(String, String)>,
    /// Every message, ReadyForQuery last.
    pub messages: Vec<Msg>,
}

/// A connected, logged-in client.
pub struct RawClient {
    stream: TcpStream,
    buf: BytesMut,
    /// ParameterStatus pairs of the welcome.
    pub params: Vec<(String, String)>,
}

fn error_of(body: &[u8]) -> (String, String) {
    let f = ErrorFields::parse(body).unwrap();
    let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
    (text(f.code()), text(f.message()))
}

impl RawClient {
    /// Connects to 127.0.0.1:`port` with `params` (must include user and database) and answers
    /// a cleartext or md5 password request with `password`. Err: the server's (SQLSTATE, message).
    pub async fn connect(
        port: u16,
        params: &[(&str, &str)],
        password: &str,
    ) -> Result<RawClient, (String, String)> {
        let user = params.iter().find(|(k, _)| *k == "user").unwrap().1;
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut client = RawClient {
            stream,
            buf: BytesMut::new(),
            params: Vec::new(),
        };
        let mut out = BytesMut::new();
        startup::startup_message(&mut out, startup::PROTOCOL_3_0, params.iter().copied()).unwrap();
        client.stream.write_all(&out).await.unwrap();
        loop {
            let (tag, body) = client.next().await;
            match tag {
                b'R' => {
                    let mut out = BytesMut::new();
                    match Authentication::parse(&body).unwrap() {
                        Authentication::Ok => continue,
                        Authentication::CleartextPassword => {
                            frontend::password_message(&mut out, password.as_bytes()).unwrap();
                        }
                        Authentication::Md5Password { salt } => {
                            let answer =
                                md5_response(user, Md5Credential::Password(password), salt);
                            frontend::password_message(&mut out, answer.as_bytes()).unwrap();
                        }
                        other => panic!("unexpected auth request {other:?}"),
                    }
                    client.stream.write_all(&out).await.unwrap();
                }
                b'S' => {
                    let mut parts = body.split(|b| *b == 0);
                    let name = String::from_utf8_lossy(parts.next().unwrap()).into_owned();
                    let value = String::from_utf8_lossy(parts.next().unwrap()).into_owned();
                    client.params.push((name, value));
                }
                b'E' => return Err(error_of(&body)),
                b'Z' => return Ok(client),
                _ => {}
            }
        }
    }

    async fn next(&mut self) -> Msg {
        loop {
            let mut walk = Walk::new(&self.buf, 1 << 30);
            if let Some(m) = walk.next_message().unwrap() {
                let msg = (m.tag, m.body.to_vec());
                let used = walk.consumed();
                let _ = self.buf.split_to(used);
                return msg;
            }
            let n = self.stream.read_buf(&mut self.buf).await.unwrap();
            assert!(n > 0, "server closed the connection");
        }
    }

    /// The socket, for a test that speaks the protocol itself from here on. Nothing may be
    /// left unread: after the login's ReadyForQuery the pooler sends nothing unasked.
    pub fn into_stream(self) -> TcpStream {
        assert!(
            self.buf.is_empty(),
            "bytes after ReadyForQuery: {:?}",
            self.buf
        );
        self.stream
    }

    /// Runs one simple query and collects its answer up to ReadyForQuery.
    pub async fn query(&mut self, sql: &str) -> QueryResult {
        let mut out = BytesMut::new();
        frontend::query(&mut out, sql).unwrap();
        self.stream.write_all(&out).await.unwrap();
        let mut result = QueryResult::default();
        loop {
            let (tag, body) = self.next().await;
            match tag {
                b'T' => {
                    result.columns = RowDescription::parse(&body)
                        .unwrap()
                        .fields()
                        .map(|f| (String::from_utf8_lossy(f.name).into_owned(), f.type_oid))
                        .collect();
                }
                b'D' => {
                    let row = bouncectl::protocol::backend::results::DataRow::parse(&body)
                        .unwrap()
                        .values()
                        .map(|v| v.map(|b| String::from_utf8_lossy(b).into_owned()))
                        .collect();
                    result.rows.push(row);
                }
                b'E' => result.error = Some(error_of(&body)),
                _ => {}
            }
            let done = tag == b'Z';
            result.messages.push((tag, body));
            if done {
                return result;
            }
        }
    }

    /// The value of column `name` in each row.
    pub fn column<'r>(result: &'r QueryResult, name: &str) -> Vec<Option<&'r str>> {
        let i = result
            .columns
            .iter()
            .position(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", result.columns));
        result.rows.iter().map(|r| r[i].as_deref()).collect()
    }
}
