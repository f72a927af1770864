//! The pooler with real clients: tokio-postgres, psql and pgbench through bouncectl to PostgreSQL.

use crate::support::bouncer::TestBouncer;
use crate::support::postgres::{MD5_USER, PASSWORD, SCRAM_USER, TempPostgres};
use crate::support::{self};

#[tokio::test]
async fn simple_and_extended_queries_through_transaction_pooling() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "").await;
    let client = support::connect(&bouncer.url(MD5_USER, "postgres"))
        .await
        .unwrap();
    let rows = client.simple_query("SELECT 1; SELECT 'two'").await.unwrap();
    assert_eq!(
        rows.iter()
            .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
            .count(),
        2
    );
    let row = client
        .query_one("SELECT $1::int + 1", &[&41i32])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    let user: String = client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(user, MD5_USER);
    let _ = PASSWORD;
    let _ = SCRAM_USER;
}
