//! A consumer of a Redis Stream in a consumer group, for work that must come out exactly once
//! per message whatever crashes: several daemons in one group share the messages
//! (`XREADGROUP`), a message is acknowledged only together with its result, and the messages
//! of a consumer that died are taken over by the others (`XAUTOCLAIM`).
//!
//! Delivery is at least once — a message whose consumer died, or was only slow, is processed
//! again — so the work must give the same result for the same message (the hotline's is
//! idempotent by report id), and publishing is guarded so that a result goes out once per key:
//! one Lua script, atomic in Redis, sets the key's marker if absent, appends the result to the
//! output stream only then, and acknowledges the message. A crash before the script leaves the
//! message pending (it is processed again); after it, the result is out and the message done.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Value;
use redis::aio::MultiplexedConnection;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Where a consumer reads and writes.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// The stream read.
    pub input: String,
    /// The consumer group.
    pub group: String,
    /// This consumer's name in the group: stable across restarts, so that a restarted daemon
    /// takes up its own unfinished messages first.
    pub consumer: String,
    /// The stream results are appended to.
    pub output: String,
    /// Messages asked for at once.
    pub batch: usize,
    /// Messages processed at once (unordered work).
    pub concurrency: usize,
    /// Process the messages of each read in stream order, a read at a time, with
    /// [`Work::process_in_order`] (e.g. one durable write for the batch), instead of
    /// `concurrency` at once.
    pub ordered: bool,
    /// How long one read waits for messages.
    pub block: Duration,
    /// A message pending this long with another consumer is taken over.
    pub claim_idle: Duration,
    /// How long a result's marker is kept (duplicates later than this would publish again).
    pub marker_ttl: Duration,
}

/// One message: its id and fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The stream entry id.
    pub id: String,
    /// Field name → value.
    pub fields: BTreeMap<String, Vec<u8>>,
}

/// What processing a message gives: the key that makes results unique (a report id) and the
/// result's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultEntry {
    /// At most one result is published per key.
    pub key: String,
    /// The result's fields, in order.
    pub fields: Vec<(String, Vec<u8>)>,
}

/// The work done for each message. It never fails: a message that cannot be processed gives
/// a result saying so, since retrying it for ever would block nothing but fill the log. An
/// outcome of `None` means "not now" (e.g. the store is unavailable): the message stays
/// pending and is retried.
pub trait Work: Send + Sync + 'static {
    /// Processes one message.
    fn process(&self, message: Message) -> impl Future<Output = Option<ResultEntry>> + Send;

    /// Processes messages in order, for an [ordered](StreamSpec::ordered) consumer: an
    /// outcome per message. By default one after another with [`Work::process`].
    fn process_in_order(
        &self,
        messages: Vec<Message>,
    ) -> impl Future<Output = Vec<Option<ResultEntry>>> + Send {
        async move {
            let mut outcomes = Vec::with_capacity(messages.len());
            for message in messages {
                outcomes.push(self.process(message).await);
            }
            outcomes
        }
    }
}

/// Publishes a result once per key and acknowledges its message, atomically.
/// KEYS: input stream, output stream, marker. ARGV: group, entry id, marker TTL (s), fields.
const PUBLISH: &str = r"
if redis.call('SET', KEYS[3], ARGV[2], 'NX', 'EX', ARGV[3]) then
  redis.call('XADD', KEYS[2], '*', unpack(ARGV, 4))
end
return redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
";

/// Consumes `spec.input` until `shutdown`, then finishes the messages in hand.
pub async fn consume<W: Work>(
    client: redis::Client,
    spec: StreamSpec,
    work: Arc<W>,
    shutdown: CancellationToken,
) -> redis::RedisResult<()> {
    // Blocking reads get a connection of their own: commands on a multiplexed connection
    // queue behind a blocked one.
    let mut reader = client.get_multiplexed_async_connection().await?;
    let writer = client.get_multiplexed_async_connection().await?;
    create_group(&mut reader, &spec).await?;
    let publish = redis::Script::new(PUBLISH);
    let mut in_flight = JoinSet::new();
    // First this consumer's own unfinished messages (from before a restart), then new ones;
    // now and then, those of consumers that went quiet.
    // (Read after the last one taken, so that none is taken twice while still in hand.)
    let mut own_pending = Some("0".to_string());
    let mut last_claim = Instant::now() - spec.claim_idle;
    while !shutdown.is_cancelled() {
        // An ordered consumer has one read's messages in hand at a time.
        let room = match spec.ordered {
            true if in_flight.is_empty() => spec.batch,
            true => 0,
            false => spec.batch.min(spec.concurrency.saturating_sub(in_flight.len())),
        };
        if room == 0 {
            in_flight.join_next().await;
            continue;
        }
        let messages = if last_claim.elapsed() >= spec.claim_idle / 2 {
            last_claim = Instant::now();
            claim(&mut reader, &spec, room).await?
        } else if let Some(after) = &own_pending {
            let messages = read(&mut reader, &spec, room, after, None).await?;
            own_pending = messages.last().map(|message| message.id.clone());
            messages
        } else {
            let block = if in_flight.is_empty() { Some(spec.block) } else { None };
            tokio::select! {
                read = read(&mut reader, &spec, room, ">", block) => read?,
                () = shutdown.cancelled() => break,
            }
        };
        if messages.is_empty() && !in_flight.is_empty() {
            in_flight.join_next().await;
        }
        if messages.is_empty() {
            continue;
        }
        let (work, spec, publish, mut writer) =
            (Arc::clone(&work), spec.clone(), publish.clone(), writer.clone());
        if spec.ordered {
            in_flight.spawn(async move {
                let ids: Vec<String> = messages.iter().map(|message| message.id.clone()).collect();
                let outcomes = work.process_in_order(messages).await;
                for (id, outcome) in ids.iter().zip(outcomes) {
                    if let Some(outcome) = outcome {
                        publish_one(&publish, &mut writer, &spec, id, &outcome).await;
                    }
                }
            });
        } else {
            for message in messages {
                let (work, spec, publish, mut writer) =
                    (Arc::clone(&work), spec.clone(), publish.clone(), writer.clone());
                in_flight.spawn(async move {
                    let id = message.id.clone();
                    if let Some(outcome) = work.process(message).await {
                        publish_one(&publish, &mut writer, &spec, &id, &outcome).await;
                    }
                });
            }
        }
    }
    while in_flight.join_next().await.is_some() {}
    Ok(())
}

/// Publishes `outcome` of the message `id` once per key and acknowledges the message.
async fn publish_one(
    publish: &redis::Script,
    writer: &mut MultiplexedConnection,
    spec: &StreamSpec,
    id: &str,
    outcome: &ResultEntry,
) {
    let mut invocation = publish.key(&spec.input);
    invocation
        .key(&spec.output)
        .key(format!("{}:published:{}", spec.output, outcome.key))
        .arg(&spec.group)
        .arg(id)
        .arg(spec.marker_ttl.as_secs().max(1));
    for (name, value) in &outcome.fields {
        invocation.arg(name).arg(value.as_slice());
    }
    if let Err(err) = invocation.invoke_async::<i64>(writer).await {
        // The message stays pending; it will be claimed and done again.
        tracing::warn!(stream = %spec.input, id, error = %err, "could not publish a result");
    }
}

/// Creates the group (and the stream) if they do not exist; a new group starts at the
/// stream's beginning, so that reports queued before any daemon ran are processed.
async fn create_group(connection: &mut MultiplexedConnection, spec: &StreamSpec) -> redis::RedisResult<()> {
    let created: redis::RedisResult<Value> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&spec.input)
        .arg(&spec.group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(connection)
        .await;
    match created {
        Err(err) if err.code() == Some("BUSYGROUP") => Ok(()),
        other => other.map(drop),
    }
}

/// `XREADGROUP` from `start` (`>`: new messages; `0`: this consumer's pending ones).
async fn read(
    connection: &mut MultiplexedConnection,
    spec: &StreamSpec,
    count: usize,
    start: &str,
    block: Option<Duration>,
) -> redis::RedisResult<Vec<Message>> {
    let mut command = redis::cmd("XREADGROUP");
    command.arg("GROUP").arg(&spec.group).arg(&spec.consumer).arg("COUNT").arg(count);
    if let Some(block) = block {
        command.arg("BLOCK").arg(block.as_millis().max(1) as u64);
    }
    command.arg("STREAMS").arg(&spec.input).arg(start);
    let reply: Value = command.query_async(connection).await?;
    // [[stream, [entry, ...]]], or nil when the block ran out.
    let Value::Array(streams) = reply else { return Ok(Vec::new()) };
    let mut messages = Vec::new();
    for stream in streams {
        if let Value::Array(mut parts) = stream
            && parts.len() == 2
        {
            messages.extend(entries(parts.pop().expect("two parts")));
        }
    }
    Ok(messages)
}

/// `XAUTOCLAIM`: takes over messages pending with any consumer for longer than `claim_idle`.
async fn claim(
    connection: &mut MultiplexedConnection,
    spec: &StreamSpec,
    count: usize,
) -> redis::RedisResult<Vec<Message>> {
    let reply: Value = redis::cmd("XAUTOCLAIM")
        .arg(&spec.input)
        .arg(&spec.group)
        .arg(&spec.consumer)
        .arg(spec.claim_idle.as_millis() as u64)
        .arg("0-0")
        .arg("COUNT")
        .arg(count)
        .query_async(connection)
        .await?;
    // [next start, [entry, ...], [deleted ids]].
    match reply {
        Value::Array(mut parts) if parts.len() >= 2 => Ok(entries(parts.swap_remove(1))),
        _ => Ok(Vec::new()),
    }
}

/// Stream entries `[[id, [field, value, ...]], ...]` as messages; entries whose fields are
/// gone (deleted from the stream) are skipped.
fn entries(value: Value) -> Vec<Message> {
    let Value::Array(entries) = value else { return Vec::new() };
    entries
        .into_iter()
        .filter_map(|entry| {
            let Value::Array(mut pair) = entry else { return None };
            if pair.len() != 2 {
                return None;
            }
            let (Value::Array(fields), Value::BulkString(id)) = (pair.pop()?, pair.pop()?) else {
                return None;
            };
            let mut map = BTreeMap::new();
            let mut fields = fields.into_iter();
            while let (Some(Value::BulkString(name)), Some(Value::BulkString(value))) =
                (fields.next(), fields.next())
            {
                map.insert(String::from_utf8_lossy(&name).into_owned(), value);
            }
            Some(Message { id: String::from_utf8_lossy(&id).into_owned(), fields: map })
        })
        .collect()
}
