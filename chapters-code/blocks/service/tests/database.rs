//! Opening a chapter's database: each step's failure is named.

use block_service::open_database;

struct Store;

impl Store {
    async fn ensure_schema(&self) -> Result<bool, std::io::Error> {
        Err(std::io::Error::other("relation already exists"))
    }
}

#[tokio::test]
async fn a_failed_connect_names_database_url() {
    let refused = async { Err::<Store, _>(std::io::Error::other("connection refused")) };
    let e = open_database(refused, Store::ensure_schema).await.err();
    let message = e.map(|e| format!("{e:#}")).unwrap_or_default();
    assert_eq!(message, "connecting to DATABASE_URL: connection refused");
}

#[tokio::test]
async fn a_failed_schema_names_the_schema() {
    let connected = async { Ok::<_, std::io::Error>(Store) };
    let e = open_database(connected, Store::ensure_schema).await.err();
    let message = e.map(|e| format!("{e:#}")).unwrap_or_default();
    assert_eq!(message, "applying sql/schema.sql: relation already exists");
}

#[tokio::test]
async fn an_applied_schema_returns_the_store() {
    let connected = async { Ok::<_, std::io::Error>(7u8) };
    let store = open_database(connected, async |_: &u8| Ok::<_, std::io::Error>(true)).await;
    assert_eq!(store.ok(), Some(7));
}
