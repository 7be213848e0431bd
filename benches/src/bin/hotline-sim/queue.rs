//! The hotline's side of Redis: reports pushed to the reports stream, decisions read from the
//! results stream, and the stream ids (Redis's clock, in milliseconds) for timing a stage.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use redis::Value;

pub const REPORTS: &str = "hashsieve:reports";
pub const HASHED: &str = "hashsieve:hashed";
pub const RESULTS: &str = "hashsieve:results";

/// Reports sent in one round trip: enough to keep Redis busy, few enough that a pipeline of
/// images stays a few megabytes.
const PUSH_CHUNK: usize = 32;

pub struct Queue {
    connection: redis::Connection,
    /// The id of the last result read.
    results_cursor: String,
}

/// One entry of the results stream.
pub struct Decided {
    pub report_id: String,
    /// `known`, `previously_assessed`, `new` or `error`.
    pub outcome: String,
    /// The decision as JSON (null for an error).
    pub decision: serde_json::Value,
    pub error: Option<String>,
}

impl Queue {
    pub fn connect(url: &str) -> anyhow::Result<Queue> {
        let connection = redis::Client::open(url)?.get_connection().context("connecting to Redis")?;
        Ok(Queue { connection, results_cursor: "0".into() })
    }

    /// Appends reports (id, content) to the reports stream, in order.
    pub fn push<'a>(&mut self, reports: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> anyhow::Result<()> {
        let reports: Vec<_> = reports.into_iter().collect();
        for chunk in reports.chunks(PUSH_CHUNK) {
            let mut pipe = redis::pipe();
            for (id, content) in chunk {
                pipe.cmd("XADD")
                    .arg(REPORTS)
                    .arg("*")
                    .arg("report_id")
                    .arg(*id)
                    .arg("content")
                    .arg(*content)
                    .arg("source")
                    .arg("sim")
                    .ignore();
            }
            pipe.query::<()>(&mut self.connection).context("XADD")?;
        }
        Ok(())
    }

    /// The results published since the last call, waiting up to `block` for the first.
    pub fn next_results(&mut self, block: Duration) -> anyhow::Result<Vec<Decided>> {
        let reply: Value = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(1000)
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS")
            .arg(RESULTS)
            .arg(&self.results_cursor)
            .query(&mut self.connection)
            .context("XREAD")?;
        let entries = match reply {
            Value::Nil => return Ok(Vec::new()),
            Value::Array(mut streams) if streams.len() == 1 => match streams.remove(0) {
                Value::Array(mut pair) if pair.len() == 2 => pair.remove(1),
                other => bail!("XREAD: unexpected stream {other:?}"),
            },
            Value::Map(mut streams) if streams.len() == 1 => streams.remove(0).1,
            other => bail!("XREAD: unexpected reply {other:?}"),
        };
        let mut decided = Vec::new();
        for (id, fields) in entries_of(entries)? {
            self.results_cursor = id;
            let field = |name: &str| fields.get(name).cloned();
            let decision = match field("decision") {
                Some(json) => serde_json::from_str(&json).context("a decision is JSON")?,
                None => serde_json::Value::Null,
            };
            decided.push(Decided {
                report_id: field("report_id").context("a result without report_id")?,
                outcome: field("outcome").context("a result without outcome")?,
                decision,
                error: field("error"),
            });
        }
        Ok(decided)
    }

    /// Consumers that have joined `group` of `stream` (none while it does not exist).
    pub fn consumers(&mut self, stream: &str, group: &str) -> usize {
        let reply: redis::RedisResult<Value> =
            redis::cmd("XINFO").arg("CONSUMERS").arg(stream).arg(group).query(&mut self.connection);
        match reply {
            Ok(Value::Array(consumers)) => consumers.len(),
            _ => 0,
        }
    }

    /// The millisecond part of the first (`first`) or last entry id of `stream`: when Redis
    /// added it.
    pub fn entry_ms(&mut self, stream: &str, first: bool) -> anyhow::Result<u64> {
        let (command, from, to) = if first { ("XRANGE", "-", "+") } else { ("XREVRANGE", "+", "-") };
        let reply: Value = redis::cmd(command)
            .arg(stream)
            .arg(from)
            .arg(to)
            .arg("COUNT")
            .arg(1)
            .query(&mut self.connection)?;
        let (id, _) = entries_of(reply)?.into_iter().next().with_context(|| format!("{stream} is empty"))?;
        let ms = id.split('-').next().and_then(|ms| ms.parse().ok());
        ms.with_context(|| format!("a stream id {id:?}"))
    }
}

/// Stream entries as (id, field → text).
fn entries_of(reply: Value) -> anyhow::Result<Vec<(String, BTreeMap<String, String>)>> {
    let Value::Array(entries) = reply else { bail!("stream entries: unexpected {reply:?}") };
    let text = |value: &Value| match value {
        Value::BulkString(bytes) => Ok(String::from_utf8_lossy(bytes).into_owned()),
        other => bail!("stream entries: unexpected {other:?}"),
    };
    let mut out = Vec::new();
    for entry in &entries {
        let Value::Array(pair) = entry else { bail!("stream entry: unexpected {entry:?}") };
        let [id, Value::Array(fields)] = pair.as_slice() else { bail!("stream entry: unexpected {pair:?}") };
        let fields = fields
            .chunks_exact(2)
            .map(|pair| Ok((text(&pair[0])?, text(&pair[1])?)))
            .collect::<anyhow::Result<_>>()?;
        out.push((text(id)?, fields));
    }
    Ok(out)
}
