//! Carts in Redis: one hash per cart, one field per add or tombstone.
//!
//! Key `{prefix}cart:{id}`; fields `a:<tag>` = `<sku> <quantity>` for a live
//! add and `r:<tag>` = `1` for a tombstone. Add and remove are one Lua
//! script on one key each, so they are atomic and work unchanged on Redis
//! Cluster. A merge touches two keys, which Redis Cluster may keep on two
//! nodes, so it is three steps, none of which can lose a write: read the
//! source cart, send its fields to a script on the target, then delete from
//! the source only the fields read, and only where they are unchanged (an
//! add that lands meanwhile stays in the guest cart; a removal that lands
//! meanwhile turned an add read into a tombstone, which is carried over
//! before it is deleted). The three steps are not atomic across the keys, so
//! a merge holds a short lease on the guest cart (`…:merging`, `SET NX PX`):
//! a second merge of the same guest cart meanwhile is refused as retryable.

use std::time::Duration;

use block_errors::{Class, Transient};
use redis::aio::ConnectionManager;

use super::{CART_TTL, CartError, CartId, CartStore, MAX_CART_ENTRIES};
use crate::domain::{Cart, Quantity, Sku, Tag};

// ANCHOR: lua
const ADD: &str = r"
if redis.call('HEXISTS', KEYS[1], 'a:' .. ARGV[1]) == 0
   and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
if redis.call('HEXISTS', KEYS[1], 'r:' .. ARGV[1]) == 0 then
  redis.call('HSET', KEYS[1], 'a:' .. ARGV[1], ARGV[2])
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1";

const REMOVE: &str = r"
local fields = redis.call('HGETALL', KEYS[1])
local prefix = ARGV[1] .. ' '
local n = 0
for i = 1, #fields, 2 do
  local f, v = fields[i], fields[i + 1]
  if string.sub(f, 1, 2) == 'a:' and string.sub(v, 1, #prefix) == prefix then
    redis.call('HDEL', KEYS[1], f)
    redis.call('HSET', KEYS[1], 'r:' .. string.sub(f, 3), '1')
    n = n + 1
  end
end
if n > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return n";

const MERGE_INTO: &str = r"
local new = 0
for i = 3, #ARGV, 2 do
  local tag = string.sub(ARGV[i], 3)
  if redis.call('HEXISTS', KEYS[1], 'a:' .. tag) == 0
     and redis.call('HEXISTS', KEYS[1], 'r:' .. tag) == 0 then
    new = new + 1
  end
end
if redis.call('HLEN', KEYS[1]) + new > tonumber(ARGV[2]) then
  return 0
end
for i = 3, #ARGV, 2 do
  local f, v = ARGV[i], ARGV[i + 1]
  local tag = string.sub(f, 3)
  if string.sub(f, 1, 2) == 'r:' then
    redis.call('HSET', KEYS[1], f, '1')
    redis.call('HDEL', KEYS[1], 'a:' .. tag)
  elseif redis.call('HEXISTS', KEYS[1], 'r:' .. tag) == 0 then
    redis.call('HSET', KEYS[1], f, v)
  end
end
if #ARGV > 2 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1";

// After the target has the fields read: delete each from the source if it is
// unchanged. An add read but removed since is now a tombstone: its field is
// returned, for the target to receive before it is deleted in turn.
const DELETE_MERGED: &str = r"
local changed = {}
for i = 1, #ARGV, 2 do
  local f, v = ARGV[i], ARGV[i + 1]
  if redis.call('HGET', KEYS[1], f) == v then
    redis.call('HDEL', KEYS[1], f)
  elseif string.sub(f, 1, 2) == 'a:' then
    local r = 'r:' .. string.sub(f, 3)
    if redis.call('HEXISTS', KEYS[1], r) == 1 then table.insert(changed, r) end
  end
end
return changed";

// Gives up a guest cart's merge lease, only if it is still ours.
const RELEASE_MERGE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";
// ANCHOR_END: lua

/// How long a guest cart's merge lease lasts: longer than a merge's five
/// calls at [`REDIS_TIMEOUT`] each.
const MERGE_LEASE_MS: u64 = 5_000;

/// How long a cart call may take before it is an error.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// Carts in Redis.
#[derive(Clone)]
pub struct RedisCarts {
    conn: ConnectionManager,
    prefix: String,
    add: redis::Script,
    remove: redis::Script,
    merge: redis::Script,
    delete_merged: redis::Script,
    release_merge: redis::Script,
}

impl RedisCarts {
    /// Carts on `conn`, under keys starting with `prefix`.
    pub fn new(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            prefix: prefix.to_string(),
            add: redis::Script::new(ADD),
            remove: redis::Script::new(REMOVE),
            merge: redis::Script::new(MERGE_INTO),
            delete_merged: redis::Script::new(DELETE_MERGED),
            release_merge: redis::Script::new(RELEASE_MERGE),
        }
    }

    /// Connects to `url`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, CartError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let conn = ConnectionManager::new(client).await.map_err(unavailable)?;
        Ok(Self::new(conn, prefix))
    }

    /// The Redis key of `cart`.
    pub fn key(&self, cart: &CartId) -> String {
        format!("{}cart:{}", self.prefix, cart)
    }

    async fn timed<T>(
        &self,
        f: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, CartError> {
        match tokio::time::timeout(REDIS_TIMEOUT, f).await {
            Ok(r) => r.map_err(unavailable),
            Err(_) => Err(CartError::Redis(
                Class::Retryable(Transient::Timeout),
                format!("no answer within {REDIS_TIMEOUT:?}"),
            )),
        }
    }

    async fn fields(&self, cart: &CartId) -> Result<Vec<(String, String)>, CartError> {
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(self.key(cart));
        self.timed(cmd.query_async::<Vec<(String, String)>>(&mut conn))
            .await
    }
}

/// A Redis error with the errors block's class: a retry may help (503 with
/// `Retry-After`), an operator must act (503 without), or a bug (500).
fn unavailable(e: redis::RedisError) -> CartError {
    CartError::Redis(block_errors::classify_redis(&e), e.to_string())
}

impl From<redis::RedisError> for CartError {
    fn from(e: redis::RedisError) -> Self {
        unavailable(e)
    }
}

fn ttl_ms() -> u64 {
    CART_TTL.as_millis() as u64
}

// ANCHOR: decode
/// A cart from its hash fields. A field that does not parse is skipped and
/// logged: a damaged entry loses one line, never the cart.
pub fn decode(fields: &[(String, String)]) -> Cart {
    let mut cart = Cart::new();
    let mut adds = Vec::new();
    for (field, value) in fields {
        let parsed = match field.split_at_checked(2) {
            Some(("r:", tag)) => Tag::parse(tag).map(|t| cart.cancel(t)),
            Some(("a:", tag)) => (|| {
                let (sku, qty) = value.split_once(' ')?;
                let qty = Quantity::new(qty.parse().ok()?).ok()?;
                adds.push((Tag::parse(tag)?, Sku::parse(sku).ok()?, qty));
                Some(())
            })(),
            _ => None,
        };
        if parsed.is_none() {
            tracing::warn!(field, value, "unreadable cart field; skipped");
        }
    }
    for (tag, sku, qty) in adds {
        cart.add(tag, sku, qty);
    }
    cart
}
// ANCHOR_END: decode

impl CartStore for RedisCarts {
    async fn add(
        &self,
        cart: &CartId,
        tag: Tag,
        sku: &Sku,
        quantity: Quantity,
    ) -> Result<(), CartError> {
        let mut conn = self.conn.clone();
        let mut inv = self.add.key(self.key(cart));
        inv.arg(tag.to_string())
            .arg(format!("{sku} {}", quantity.get()))
            .arg(ttl_ms())
            .arg(MAX_CART_ENTRIES);
        match self.timed(inv.invoke_async::<i64>(&mut conn)).await? {
            0 => Err(CartError::Full),
            _ => Ok(()),
        }
    }

    async fn remove(&self, cart: &CartId, sku: &Sku) -> Result<(), CartError> {
        let mut conn = self.conn.clone();
        let mut inv = self.remove.key(self.key(cart));
        inv.arg(sku.as_str()).arg(ttl_ms());
        self.timed(inv.invoke_async::<i64>(&mut conn)).await?;
        Ok(())
    }

    async fn merge(&self, from: &CartId, into: &CartId) -> Result<(), CartError> {
        if from == into {
            // A set joined with itself is itself; deleting the source would empty it.
            return Ok(());
        }
        // One merge of a guest cart at a time: two logins with the same guest
        // cookie would otherwise both read its fields and copy them into two
        // accounts. The lease outlives every step's timeout together.
        let mut conn = self.conn.clone();
        let lease = format!("{}:merging", self.key(from));
        let token = Tag::random().to_string();
        let mut set = redis::cmd("SET");
        set.arg(&lease)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(MERGE_LEASE_MS);
        let taken: Option<String> = self.timed(set.query_async(&mut conn)).await?;
        if taken.is_none() {
            return Err(CartError::Redis(
                Class::Retryable(Transient::Contention),
                "this guest cart is being merged".into(),
            ));
        }
        let merged = self.merge_fields(from, into).await;
        // Released only if still ours; if this fails, the lease expires.
        let mut release = self.release_merge.key(&lease);
        release.arg(&token);
        let released = self.timed(release.invoke_async::<i64>(&mut conn)).await;
        merged.and(released.map(|_| ()))
    }

    async fn get(&self, cart: &CartId) -> Result<Cart, CartError> {
        Ok(decode(&self.fields(cart).await?))
    }

    async fn clear(&self, cart: &CartId) -> Result<(), CartError> {
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.key(cart));
        self.timed(cmd.query_async::<i64>(&mut conn)).await?;
        Ok(())
    }
}

impl RedisCarts {
    /// The merge's three steps, under the guest cart's merge lease.
    async fn merge_fields(&self, from: &CartId, into: &CartId) -> Result<(), CartError> {
        let mut fields = self.fields(from).await?;
        // Twice at most: the second round carries the tombstones of adds
        // removed between the read and the delete.
        for _ in 0..2 {
            if fields.is_empty() {
                break;
            }
            let mut conn = self.conn.clone();
            let mut inv = self.merge.key(self.key(into));
            inv.arg(ttl_ms()).arg(MAX_CART_ENTRIES);
            for (f, v) in &fields {
                inv.arg(f).arg(v);
            }
            if self.timed(inv.invoke_async::<i64>(&mut conn)).await? == 0 {
                // Only the first round can be refused (the second carries
                // tombstones of tags the target holds, which take no place):
                // nothing was merged, nothing deleted, the guest cart is intact.
                return Err(CartError::Full);
            }
            // If this is lost, the fields stay in the guest cart, and a later
            // merge of it carries them again: harmless, as merges are joins.
            let mut del = self.delete_merged.key(self.key(from));
            for (f, v) in &fields {
                del.arg(f).arg(v);
            }
            let changed: Vec<String> = self.timed(del.invoke_async(&mut conn)).await?;
            fields = changed.into_iter().map(|f| (f, "1".to_string())).collect();
        }
        Ok(())
    }
}
