//! Timelines in Redis, in one of two layouts, each kept by Lua scripts.
//!
//! Keys, for user 42 under prefix `p:`: `p:tl:{42}` holds the ids and
//! `p:tl:{42}:s` the state (`building` or `ready`). The braces are a Redis
//! Cluster hash tag: both keys of a user live in one slot, so one script
//! may touch both, and different users spread over the cluster.
//!
//! - [`Layout::List`]: a LIST of decimal ids, newest first, capped with
//!   LTRIM. Compact (a listpack of small integers); the scripts keep it
//!   sorted and free of duplicates.
//! - [`Layout::Zset`]: a sorted set. Ids do not fit a score (a double holds
//!   53 bits exactly, a Snowflake needs 63), so every score is 0 and the
//!   members are ids zero-padded to 19 digits, ordered by BYLEX.
//!
//! Every value read back is parsed like input: an entry that is not an id
//! is a [`CacheError::Garbage`], never a post.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, Pipeline, Script, Value};

use super::{CacheError, TimelineCache, Window};
use crate::domain::{PostId, UserId};

/// How the ids of one timeline are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// LIST + LTRIM, newest first.
    List,
    /// ZSET, score 0, members ordered lexicographically.
    Zset,
}

// ANCHOR: lua_list
/// Shared Lua: is id `a` newer than id `b`? (Decimal strings without
/// leading zeros: longer is larger. Lua numbers are doubles, so ids are
/// compared as strings, never converted.)
const NEWER: &str = "
local function newer(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end
";

/// KEYS: list, state. ARGV: cap, ids... Inserts each id once, in order,
/// into an existing timeline; returns how many were new, or -1 if absent.
/// A ready timeline whose list is gone was half lost ([`LOST`]).
const LIST_INSERT: &str = "
if lost() then return -1 end
local cap = tonumber(ARGV[1])
local last = #ARGV
local added = 0
if last > 2 then
  -- Several ids (a backfill, a rebuild), oldest first: one merge pass over
  -- the list and the ids, newest first, stopping at the cap, instead of a
  -- scan of the list per id (quadratic in the cap for a full list).
  local items = redis.call('LRANGE', KEYS[1], 0, -1)
  local merged = {}
  local i, j = 1, last
  while #merged < cap and (i <= #items or j >= 2) do
    local a = items[i]
    local b = nil
    if j >= 2 then b = ARGV[j] end
    if b ~= nil and merged[#merged] == b then
      j = j - 1
    elseif b == nil or (a ~= nil and a ~= b and newer(a, b)) then
      merged[#merged + 1] = a; i = i + 1
    elseif a == b then
      merged[#merged + 1] = a; i = i + 1; j = j - 1
    else
      merged[#merged + 1] = b; j = j - 1; added = added + 1
    end
  end
  redis.call('DEL', KEYS[1])
  for k = 1, #merged, 1000 do
    redis.call('RPUSH', KEYS[1], unpack(merged, k, math.min(k + 999, #merged)))
  end
else
for i = 2, last do
  local id = ARGV[i]
  local head = redis.call('LINDEX', KEYS[1], 0)
  if (not head) or newer(id, head) then
    -- The common case: the newest post goes on top. A duplicate cannot be newer than the head.
    redis.call('LPUSH', KEYS[1], id)
    added = added + 1
  elseif not redis.call('LPOS', KEYS[1], id) then
    -- Late or replayed delivery of an older post: insert in place.
    local items = redis.call('LRANGE', KEYS[1], 0, -1)
    local pivot = false
    for j = 1, #items do
      if newer(id, items[j]) then pivot = items[j]; break end
    end
    if pivot then redis.call('LINSERT', KEYS[1], 'BEFORE', pivot, id)
    else redis.call('RPUSH', KEYS[1], id) end
    added = added + 1
  end
end
end
redis.call('LTRIM', KEYS[1], 0, cap - 1)
local ttl = redis.call('PTTL', KEYS[2])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return added
";

/// KEYS: list, state. ARGV: before ('' for the top), n, ttl ms.
/// Returns false unless ready, else {length, entries left after these, ids...}.
/// The empty-list marker at the tail is not an entry.
const LIST_WINDOW: &str = "
if lost() or redis.call('GET', KEYS[2]) ~= 'ready' then return false end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local len = redis.call('LLEN', KEYS[1])
if redis.call('LINDEX', KEYS[1], -1) == '0' then len = len - 1 end
local start = 0
if ARGV[1] ~= '' then
  -- Binary search for the first entry older than the cursor.
  local lo, hi = 0, len
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if newer(ARGV[1], redis.call('LINDEX', KEYS[1], mid)) then hi = mid else lo = mid + 1 end
  end
  start = lo
end
local n = tonumber(ARGV[2])
local ids = {}
if n > 0 and start < len then ids = redis.call('LRANGE', KEYS[1], start, math.min(start + n, len) - 1) end
local out = {len, len - start - #ids}
for i = 1, #ids do out[#out + 1] = ids[i] end
return out
";
// ANCHOR_END: lua_list

const ZSET_INSERT: &str = "
if lost() then return -1 end
local added = 0
for i = 2, #ARGV do added = added + redis.call('ZADD', KEYS[1], 0, ARGV[i]) end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[1]) + 1))
local ttl = redis.call('PTTL', KEYS[2])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return added
";

const ZSET_WINDOW: &str = "
if lost() or redis.call('GET', KEYS[2]) ~= 'ready' then return false end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local len = redis.call('ZLEXCOUNT', KEYS[1], '[0', '+')
local top = '+'
if ARGV[1] ~= '' then top = '(' .. ARGV[1] end
local n = tonumber(ARGV[2])
local ids = {}
if n > 0 then ids = redis.call('ZRANGE', KEYS[1], top, '[0', 'BYLEX', 'REV', 'LIMIT', 0, n) end
local left = 0
if #ids > 0 then left = redis.call('ZLEXCOUNT', KEYS[1], '[0', '(' .. ids[#ids])
elseif ARGV[1] ~= '' then left = 0 end
local out = {len, left}
for i = 1, #ids do out[#out + 1] = ids[i] end
return out
";

// ANCHOR: lua_rebuild
/// KEYS: state. ARGV: ttl ms. Creates the state as `building` unless it exists.
const BEGIN_REBUILD: &str = "
if redis.call('SET', KEYS[1], 'building', 'NX', 'PX', ARGV[1]) then
  return 1
end
return 0
";

/// Appended to an insert script: after inserting, mark ready. If the state
/// vanished while the database was read (a flush, an expiry), fan-out may
/// have skipped this user meanwhile, so the rebuild must not claim to be
/// complete: return -1 and leave the timeline absent. A timeline rebuilt
/// empty gets the layout's marker (`EMPTY_LIST` / `EMPTY_ZSET`), so that a
/// ready timeline always has its list and a missing one means a loss.
const FINISH_SUFFIX: &str = "
mark_empty()
redis.call('SET', KEYS[2], 'ready', 'PX', ARGV[#ARGV])
redis.call('PEXPIRE', KEYS[1], ARGV[#ARGV])
return 1
";
// ANCHOR_END: lua_rebuild

// ANCHOR: lost
/// Shared Lua: a timeline is two keys (state and list) and one may be lost
/// without the other (an eviction, a list expiring first, a failover that
/// carried one write). A ready state without its list is such a loss, not
/// an empty timeline (an empty one holds a marker): the state is dropped
/// and the timeline is absent, to be rebuilt on the next read.
const LOST: &str = "
local function lost()
  local state = redis.call('GET', KEYS[2])
  if not state then return true end
  if state == 'ready' and redis.call('EXISTS', KEYS[1]) == 0 then
    redis.call('DEL', KEYS[2])
    return true
  end
  return false
end
";

/// The marker of an empty LIST: `0`, older than every id, at the tail.
/// Inserts go above it and the cap trims it once real entries fill the list.
const EMPTY_LIST: &str = "
local function mark_empty()
  if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('RPUSH', KEYS[1], '0') end
end
";

/// The marker of an empty ZSET: the empty member, below every id (reads
/// start at `[0`), trimmed first once the cap is passed.
const EMPTY_ZSET: &str = "
local function mark_empty()
  if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('ZADD', KEYS[1], 0, '') end
end
";
// ANCHOR_END: lost

struct Scripts {
    insert: Script,
    window: Script,
    finish: Script,
    begin: Script,
}

impl Scripts {
    fn new(layout: Layout) -> Self {
        let (insert, window, empty) = match layout {
            Layout::List => (LIST_INSERT, LIST_WINDOW, EMPTY_LIST),
            Layout::Zset => (ZSET_INSERT, ZSET_WINDOW, EMPTY_ZSET),
        };
        // The finish script is the insert script without its final return,
        // reading ARGV[2..#ARGV-1] as ids and ARGV[#ARGV] as the TTL.
        let body = insert
            .replace("local last = #ARGV\n", "local last = #ARGV - 1\n")
            .replace("for i = 2, #ARGV do", "for i = 2, #ARGV - 1 do")
            .replace("return added\n", "");
        Self {
            insert: Script::new(&format!("{NEWER}{LOST}{insert}")),
            window: Script::new(&format!("{NEWER}{LOST}{window}")),
            finish: Script::new(&format!("{NEWER}{LOST}{empty}{body}{FINISH_SUFFIX}")),
            begin: Script::new(BEGIN_REBUILD),
        }
    }
}

/// Home timelines in Redis.
#[derive(Clone)]
pub struct RedisTimelines {
    conn: ConnectionManager,
    prefix: String,
    layout: Layout,
    cap: usize,
    ttl: Duration,
    scripts: std::sync::Arc<Scripts>,
}

fn unavailable(e: redis::RedisError) -> CacheError {
    redis_error(e)
}

/// Classifies a Redis error by the errors block's classes: the connection
/// or the server's state (BUSY, LOADING, MISCONF, READONLY, or OOM until an
/// operator acts) is not the job's fault and is waited out; a refusal of
/// this command (WRONGTYPE on one follower's key) repeats on every attempt.
pub(crate) fn redis_error(e: redis::RedisError) -> CacheError {
    use block_errors::Class;
    match block_errors::classify_redis(&e) {
        Class::Retryable(_) | Class::Final => CacheError::Unavailable(e.to_string()),
        Class::Conflict(_) | Class::Bug => CacheError::Rejected(e.to_string()),
    }
}

impl RedisTimelines {
    /// Timelines on the server at `url`, under `prefix`, capped at `cap`,
    /// dropped after `ttl` without a read (inactive users cost nothing).
    pub async fn connect(
        url: &str,
        prefix: &str,
        layout: Layout,
        cap: usize,
        ttl: Duration,
    ) -> Result<Self, CacheError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(super::REDIS_CONNECT_TIMEOUT))
            .set_response_timeout(Some(super::REDIS_RESPONSE_TIMEOUT))
            .set_number_of_retries(super::REDIS_RETRIES);
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(unavailable)?;
        Ok(Self {
            conn,
            prefix: prefix.to_string(),
            layout,
            cap: cap.max(1),
            ttl,
            scripts: std::sync::Arc::new(Scripts::new(layout)),
        })
    }

    /// The layout in use.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The key holding `user`'s ids.
    pub fn list_key(&self, user: UserId) -> String {
        format!("{}tl:{{{}}}", self.prefix, user.0)
    }

    fn state_key(&self, user: UserId) -> String {
        format!("{}tl:{{{}}}:s", self.prefix, user.0)
    }

    fn member(&self, id: PostId) -> String {
        match self.layout {
            Layout::List => id.raw().to_string(),
            Layout::Zset => format!("{:019}", id.raw()),
        }
    }

    fn parse_member(&self, raw: &str) -> Result<PostId, CacheError> {
        let canonical = match self.layout {
            Layout::List => !raw.starts_with('0'),
            Layout::Zset => raw.len() == 19,
        };
        raw.parse::<u64>()
            .ok()
            .filter(|_| canonical && raw.bytes().all(|b| b.is_ascii_digit()))
            .and_then(PostId::from_raw)
            .ok_or_else(|| CacheError::Garbage(format!("timeline entry {raw:?}")))
    }

    fn ttl_ms(&self) -> u64 {
        self.ttl.as_millis().max(1) as u64
    }

    fn evalsha(&self, script: &Script, keys: &[String], args: Vec<String>) -> Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(script.get_hash())
            .arg(keys.len())
            .arg(keys)
            .arg(args);
        cmd
    }

    /// Runs a pipeline of EVALSHA calls, loading the scripts first if the server lost them.
    async fn run(&self, pipe: &Pipeline) -> Result<Vec<Value>, CacheError> {
        let mut conn = self.conn.clone();
        match pipe.query_async::<Vec<Value>>(&mut conn).await {
            Ok(v) => Ok(v),
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                for s in [
                    &self.scripts.insert,
                    &self.scripts.window,
                    &self.scripts.finish,
                    &self.scripts.begin,
                ] {
                    s.prepare_invoke()
                        .load_async(&mut conn)
                        .await
                        .map_err(unavailable)?;
                }
                pipe.query_async::<Vec<Value>>(&mut conn)
                    .await
                    .map_err(unavailable)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Deletes every key under this prefix: what a lost Redis node does to
    /// the users it held. (Tests share one server, so they cannot FLUSHALL.)
    pub async fn flush_prefix(&self) -> Result<u64, CacheError> {
        let mut conn = self.conn.clone();
        let pattern = format!("{}*", self.prefix);
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("DEL")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await
                    .map_err(unavailable)?;
                deleted += n;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    /// Marks the timelines of `users` ready and empty, in one pipeline (benchmark setup).
    pub async fn prepare_empty(&self, users: &[UserId]) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        for chunk in users.chunks(5_000) {
            let mut pipe = redis::pipe();
            for u in chunk {
                // The empty marker, as a rebuild that found nothing leaves it.
                match self.layout {
                    Layout::List => pipe.cmd("RPUSH").arg(self.list_key(*u)).arg("0").ignore(),
                    Layout::Zset => pipe
                        .cmd("ZADD")
                        .arg(self.list_key(*u))
                        .arg(0)
                        .arg("")
                        .ignore(),
                };
                pipe.cmd("SET")
                    .arg(self.state_key(*u))
                    .arg("ready")
                    .arg("PX")
                    .arg(self.ttl_ms())
                    .ignore();
            }
            pipe.query_async::<()>(&mut conn)
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    /// Bytes Redis reports for `user`'s id key (`MEMORY USAGE ... SAMPLES 0`).
    pub async fn memory_usage(&self, user: UserId) -> Result<u64, CacheError> {
        let mut conn = self.conn.clone();
        let bytes: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(self.list_key(user))
            .arg("SAMPLES")
            .arg(0)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(bytes.unwrap_or(0))
    }

    /// The ceiling of a read: one LRANGE / ZRANGE of `n` entries, no script, no checks.
    pub async fn raw_range(&self, user: UserId, n: usize) -> Result<usize, CacheError> {
        let mut conn = self.conn.clone();
        let n = n.max(1) as i64;
        let ids: Vec<String> = match self.layout {
            Layout::List => {
                redis::cmd("LRANGE")
                    .arg(self.list_key(user))
                    .arg(0)
                    .arg(n - 1)
                    .query_async(&mut conn)
                    .await
            }
            Layout::Zset => {
                redis::cmd("ZRANGE")
                    .arg(self.list_key(user))
                    .arg("+")
                    .arg("-")
                    .arg("BYLEX")
                    .arg("REV")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(n)
                    .query_async(&mut conn)
                    .await
            }
        }
        .map_err(unavailable)?;
        Ok(ids.len())
    }

    /// The cap, then the ids oldest first: each one is then newer than the
    /// list's head and takes the script's constant-time path.
    fn insert_args(&self, posts: &[PostId]) -> Vec<String> {
        let mut sorted = posts.to_vec();
        sorted.sort_unstable();
        let mut args = Vec::with_capacity(posts.len() + 1);
        args.push(self.cap.to_string());
        args.extend(sorted.iter().map(|p| self.member(*p)));
        args
    }
}

fn int(v: &Value) -> Result<i64, CacheError> {
    match v {
        Value::Int(n) => Ok(*n),
        other => Err(CacheError::Garbage(format!(
            "expected an integer, got {other:?}"
        ))),
    }
}

impl TimelineCache for RedisTimelines {
    fn cap(&self) -> usize {
        self.cap
    }

    // ANCHOR: deliver
    async fn deliver(&self, post: PostId, users: &[UserId]) -> Result<usize, CacheError> {
        if users.is_empty() {
            return Ok(0);
        }
        // One round trip for the whole batch: a pipeline of one script call per user.
        let mut pipe = redis::pipe();
        for u in users {
            pipe.add_command(self.evalsha(
                &self.scripts.insert,
                &[self.list_key(*u), self.state_key(*u)],
                self.insert_args(&[post]),
            ));
        }
        let replies = self.run(&pipe).await?;
        let mut added = 0;
        for r in &replies {
            added += usize::from(int(r)? == 1);
        }
        Ok(added)
    }
    // ANCHOR_END: deliver

    async fn insert(&self, user: UserId, posts: &[PostId]) -> Result<(), CacheError> {
        if posts.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.add_command(self.evalsha(
            &self.scripts.insert,
            &[self.list_key(user), self.state_key(user)],
            self.insert_args(posts),
        ));
        self.run(&pipe).await.map(|_| ())
    }

    async fn window(
        &self,
        user: UserId,
        before: Option<PostId>,
        n: usize,
    ) -> Result<Option<Window>, CacheError> {
        let mut pipe = redis::pipe();
        pipe.add_command(self.evalsha(
            &self.scripts.window,
            &[self.list_key(user), self.state_key(user)],
            vec![
                before.map(|b| self.member(b)).unwrap_or_default(),
                n.to_string(),
                self.ttl_ms().to_string(),
            ],
        ));
        let reply = self.run(&pipe).await?;
        let items = match reply.first() {
            Some(Value::Nil) | None => return Ok(None),
            Some(Value::Array(items)) if items.len() >= 2 => items,
            Some(other) => return Err(CacheError::Garbage(format!("window reply {other:?}"))),
        };
        let len = int(&items[0])?;
        let left = int(&items[1])?;
        let mut ids = Vec::with_capacity(items.len() - 2);
        for item in &items[2..] {
            let raw = match item {
                Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                other => return Err(CacheError::Garbage(format!("entry {other:?}"))),
            };
            ids.push(self.parse_member(&raw)?);
        }
        Ok(Some(Window {
            ids,
            exhausted: left <= 0,
            full: len >= self.cap as i64,
        }))
    }

    async fn begin_rebuild(&self, user: UserId) -> Result<bool, CacheError> {
        let mut pipe = redis::pipe();
        pipe.add_command(self.evalsha(
            &self.scripts.begin,
            &[self.state_key(user)],
            vec![(super::REBUILD_TTL.as_millis().max(1) as u64).to_string()],
        ));
        let reply = self.run(&pipe).await?;
        Ok(reply.first().map(int).transpose()? == Some(1))
    }

    async fn finish_rebuild(&self, user: UserId, posts: &[PostId]) -> Result<bool, CacheError> {
        let mut args = self.insert_args(posts);
        args.push(self.ttl_ms().to_string());
        let mut pipe = redis::pipe();
        pipe.add_command(self.evalsha(
            &self.scripts.finish,
            &[self.list_key(user), self.state_key(user)],
            args,
        ));
        let reply = self.run(&pipe).await?;
        Ok(reply.first().map(int).transpose()? == Some(1))
    }

    async fn evict(&self, user: UserId) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        redis::cmd("DEL")
            .arg(self.list_key(user))
            .arg(self.state_key(user))
            .query_async::<i64>(&mut conn)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::TimelineError;

    /// The error a reply becomes in the client, parsed from the exact bytes a server sends.
    fn reply(bytes: &[u8]) -> redis::RedisError {
        redis::parse_redis_value(bytes)
            .and_then(|v| v.extract_error())
            .err()
            .unwrap_or_else(|| panic!("{bytes:?} is not an error reply"))
    }

    // ANCHOR: transient_not_poison
    /// A Redis that is busy, loading, failing its snapshots, demoted to a
    /// replica or out of memory leaves the fan-out job as it was (the worker's `is_transient`
    /// branch); only a refusal of the command itself is counted on the job.
    #[test]
    fn busy_misconf_readonly_and_loading_are_transient_not_a_poisoned_job() {
        let cases: &[(&[u8], bool)] = &[
            (b"-BUSY Redis is busy running a script.\r\n", true),
            (
                b"-MISCONF Redis is configured to save RDB snapshots\r\n",
                true,
            ),
            (
                b"-READONLY You can't write against a read only replica.\r\n",
                true,
            ),
            (b"-LOADING Redis is loading the dataset in memory\r\n", true),
            (
                b"-OOM command not allowed when used memory > 'maxmemory'\r\n",
                true,
            ),
            (
                b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
                false,
            ),
        ];
        for (bytes, transient) in cases {
            let e = TimelineError::Cache(redis_error(reply(bytes)));
            assert_eq!(e.is_transient(), *transient, "{e}");
        }
    }
    // ANCHOR_END: transient_not_poison
}
