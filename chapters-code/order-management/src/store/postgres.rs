//! The PostgreSQL store: the current row, the event and the outbox message
//! in one transaction, guarded by the version column.

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use super::{Keyed, OrderStore, RecordedEvent, StoreError, created_answer, decide_at};
use crate::domain::{Command, Event, Line, NewOrder, Order, State};

/// `sql/schema.sql`, applied by tests, generators and the demo binary.
pub const SCHEMA_SQL: &str = include_str!("../../sql/schema.sql");

/// Orders in PostgreSQL.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

// ANCHOR: load_sql
/// One round trip: the order row with its lines as a JSON array.
pub const LOAD_SQL: &str = "
SELECT o.customer_id, o.state, o.version, o.total_cents, o.paid_cents, o.refunded_cents,
       (SELECT jsonb_agg(jsonb_build_object(
                   'sku', l.sku, 'quantity', l.quantity,
                   'unit_price_cents', l.unit_price_cents, 'shipped', l.shipped)
               ORDER BY l.line_no)
          FROM order_lines AS l WHERE l.order_id = o.id) AS lines
  FROM orders AS o
 WHERE o.id = $1";
// ANCHOR_END: load_sql

// ANCHOR: update_sql
/// The optimistic write: it matches no row unless the order is still at the
/// version the caller decided on. Under READ COMMITTED a second writer
/// blocks on the first one's row lock, then re-checks the WHERE clause
/// against the committed row, finds the version moved, and updates nothing.
pub const UPDATE_SQL: &str = "
UPDATE orders
   SET state = $3, version = version + 1, paid_cents = $4, refunded_cents = $5,
       updated_at = now()
 WHERE id = $1 AND version = $2";
// ANCHOR_END: update_sql

impl PgStore {
    /// A store over an existing pool (the schema must be applied).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Connects with a pool of at most `max` connections.
    pub async fn connect(url: &str, max: u32) -> Result<Self, sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(max)
            .connect(url)
            .await?;
        Ok(Self::new(pool))
    }

    /// The pool, for the relay, the saga and the benchmarks.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies the outbox block's `sql/outbox.sql` and this chapter's
    /// `sql/schema.sql` when the database has no `orders` table yet; true if it did.
    pub async fn ensure_schema(&self) -> Result<bool, sqlx::Error> {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('public.orders') IS NOT NULL")
            .fetch_one(&self.pool)
            .await?;
        if exists {
            return Ok(false);
        }
        sqlx::raw_sql(block_outbox::SCHEMA_SQL)
            .execute(&self.pool)
            .await?;
        sqlx::raw_sql(block_idempotency::pg::TABLE_SQL)
            .execute(&self.pool)
            .await?;
        sqlx::raw_sql(SCHEMA_SQL).execute(&self.pool).await?;
        Ok(true)
    }

    /// The order as stored, read through `executor` (a pool or a transaction).
    pub async fn load(executor: impl sqlx::PgExecutor<'_>, id: Uuid) -> Result<Order, StoreError> {
        let row = sqlx::query(LOAD_SQL)
            .bind(id)
            .fetch_optional(executor)
            .await?
            .ok_or(StoreError::NotFound(id))?;
        let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("order {id}: {e}"));
        let state: String = row.try_get("state")?;
        let lines: serde_json::Value = row.try_get("lines")?;
        Ok(Order {
            id,
            customer_id: row.try_get("customer_id")?,
            state: state.parse::<State>().map_err(|e| corrupt(&e))?,
            version: row.try_get("version")?,
            lines: serde_json::from_value::<Vec<Line>>(lines).map_err(|e| corrupt(&e))?,
            total_cents: row.try_get("total_cents")?,
            paid_cents: row.try_get("paid_cents")?,
            refunded_cents: row.try_get("refunded_cents")?,
        })
    }

    // ANCHOR: append
    /// Appends the event and its outbox message inside `tx`.
    async fn append(
        tx: &mut Transaction<'_, Postgres>,
        id: Uuid,
        version: i64,
        event: &Event,
    ) -> Result<(), StoreError> {
        let payload =
            serde_json::to_value(event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO order_events (order_id, version, kind, payload) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(version)
        .bind(event.kind())
        .bind(&payload)
        .execute(&mut **tx)
        .await?;
        // The message id travels in the body too: the consumer's inbox keys
        // on it even when a message reaches it without the header.
        let message_id = Uuid::new_v4();
        let message = serde_json::json!({
            "message_id": message_id, "order_id": id, "version": version, "event": payload,
        });
        let order_id = id.to_string();
        let outgoing = block_outbox::NewMessage {
            message_id,
            aggregate_type: crate::relay::AGGREGATE_TYPE,
            aggregate_id: &order_id,
            aggregate_version: Some(version),
            event_type: event.kind(),
            payload: &message,
        };
        match block_outbox::enqueue(tx, &outgoing).await {
            Ok(_) => Ok(()),
            Err(block_outbox::EnqueueError::Database(e)) => Err(StoreError::Database(e)),
            // A uuid is always a valid aggregate id, and a fresh message id
            // and an appended version are new: either would be a bug.
            Err(e) => Err(StoreError::Corrupt(e.to_string())),
        }
    }
    // ANCHOR_END: append

    // ANCHOR: apply
    /// Applies `command` inside `tx` (the caller commits): load, decide, the
    /// guarded UPDATE, the line updates, the event and the outbox message.
    /// A [`StoreError::VersionConflict`] here may carry a stale `actual`.
    pub async fn apply_in(
        tx: &mut Transaction<'_, Postgres>,
        id: Uuid,
        expected_version: i64,
        command: &Command,
    ) -> Result<Order, StoreError> {
        let order = Self::load(&mut **tx, id).await?;
        let (event, next) = decide_at(&order, expected_version, command)?;
        let updated = sqlx::query(UPDATE_SQL)
            .bind(id)
            .bind(expected_version)
            .bind(next.state.as_str())
            .bind(next.paid_cents)
            .bind(next.refunded_cents)
            .execute(&mut **tx)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::VersionConflict {
                expected: expected_version,
                actual: expected_version + 1,
            });
        }
        if let Event::Shipped { lines } = &event {
            for s in lines {
                sqlx::query(
                    "UPDATE order_lines SET shipped = shipped + $3
                      WHERE order_id = $1 AND line_no = $2",
                )
                .bind(id)
                .bind(i32::try_from(s.line).unwrap_or(i32::MAX))
                .bind(i32::try_from(s.quantity).unwrap_or(i32::MAX))
                .execute(&mut **tx)
                .await?;
            }
        }
        Self::append(tx, id, next.version, &event).await?;
        Ok(next)
    }
    // ANCHOR_END: apply
}

/// A unique violation (the errors block's `Conflict(Unique)`): this
/// store's `AlreadyExists`; any other failure keeps its own class.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    use block_errors::{Class, Constraint};
    block_errors::classify_sqlx(e) == Class::Conflict(Constraint::Unique)
}

impl PgStore {
    /// The order's rows and first event, inside `tx`.
    async fn insert_new(
        tx: &mut Transaction<'_, Postgres>,
        id: Uuid,
        request: &NewOrder,
    ) -> Result<Order, StoreError> {
        let created = request.validate()?;
        let order = Order::from_created(id, &created)?;
        Self::insert_order(tx, id, &order, &created).await?;
        Ok(order)
    }
}

impl PgStore {
    async fn insert_order(
        tx: &mut Transaction<'_, Postgres>,
        id: Uuid,
        order: &Order,
        created: &Event,
    ) -> Result<(), StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO orders (id, customer_id, state, version, total_cents)
             VALUES ($1, $2, 'created', 1, $3)",
        )
        .bind(id)
        .bind(order.customer_id)
        .bind(order.total_cents)
        .execute(&mut **tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => return Err(StoreError::AlreadyExists(id)),
            other => other?,
        };
        for (line, l) in order.lines.iter().enumerate() {
            sqlx::query(
                "INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_price_cents)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(i32::try_from(line + 1).unwrap_or(i32::MAX))
            .bind(&l.sku)
            .bind(i32::try_from(l.quantity).unwrap_or(i32::MAX))
            .bind(l.unit_price_cents)
            .execute(&mut **tx)
            .await?;
        }
        Self::append(tx, id, 1, created).await?;
        Ok(())
    }
}

impl OrderStore for PgStore {
    async fn create(&self, id: Uuid, request: &NewOrder) -> Result<Order, StoreError> {
        let mut tx = self.pool.begin().await?;
        let order = Self::insert_new(&mut tx, id, request).await?;
        tx.commit().await?;
        Ok(order)
    }

    // ANCHOR: create_keyed
    async fn create_keyed(
        &self,
        id: Uuid,
        request: &NewOrder,
        key: &block_idempotency::KeyScope,
    ) -> Result<Keyed, StoreError> {
        // Validate before claiming: an invalid order is refused the same
        // way every time and leaves no key behind.
        request.validate()?;
        let fingerprint = super::create_fingerprint(key, request)?;
        let mut tx = self.pool.begin().await?;
        let claim = block_idempotency::pg::claim(
            &mut tx,
            key,
            &fingerprint,
            block_idempotency::DEFAULT_LEASE,
        )
        .await?;
        // The claim, the work and the answer share one transaction, so an
        // unfinished key never outlives it: a taken-over key is a new one.
        let lock = match claim {
            block_idempotency::Claimed::Replay(answer) => return Ok(Keyed::Replay(answer)),
            block_idempotency::Claimed::New(lock)
            | block_idempotency::Claimed::TakenOver { lock, .. } => lock,
        };
        let order = Self::insert_new(&mut tx, id, request).await?;
        match block_idempotency::pg::finish(&mut tx, lock, &created_answer(&order)?).await {
            Ok(()) => {}
            Err(block_idempotency::FinishError::Database(e)) => return Err(e.into()),
            Err(block_idempotency::FinishError::Fenced) => {
                return Err(block_idempotency::ClaimError::KeyInUse.into());
            }
        }
        tx.commit().await?;
        Ok(Keyed::Created(order))
    }
    // ANCHOR_END: create_keyed

    async fn get(&self, id: Uuid) -> Result<Order, StoreError> {
        Self::load(&self.pool, id).await
    }

    async fn history(&self, id: Uuid) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT version, payload, recorded_at FROM order_events
              WHERE order_id = $1 ORDER BY version",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            // An order always has its created event; no events means no order.
            return Err(StoreError::NotFound(id));
        }
        rows.into_iter()
            .map(|r| {
                let payload: serde_json::Value = r.try_get("payload")?;
                Ok(RecordedEvent {
                    version: r.try_get("version")?,
                    event: serde_json::from_value(payload)
                        .map_err(|e| StoreError::Corrupt(format!("order {id}: {e}")))?,
                    recorded_at: r.try_get("recorded_at")?,
                })
            })
            .collect()
    }

    async fn apply(
        &self,
        id: Uuid,
        expected_version: i64,
        command: &Command,
    ) -> Result<Order, StoreError> {
        let mut tx = self.pool.begin().await?;
        match Self::apply_in(&mut tx, id, expected_version, command).await {
            Ok(order) => {
                tx.commit().await?;
                Ok(order)
            }
            Err(StoreError::VersionConflict { expected, .. }) => {
                // Someone committed first. Rolling back writes no event and no message.
                tx.rollback().await?;
                let actual = Self::load(&self.pool, id).await?.version;
                Err(StoreError::VersionConflict { expected, actual })
            }
            Err(e) => Err(e),
        }
    }
}
