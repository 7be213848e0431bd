//! The Redis Streams consumer against a real `redis-server` (Debian package `redis-server`)
//! on 127.0.0.1: work shared by consumers of one group, results published exactly once per
//! key, duplicates and redeliveries absorbed, and the messages of a consumer that stops
//! without acknowledging taken over by another.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hashsieve_daemon::ingest::stream::{Message, ResultEntry, StreamSpec, Work, consume};

mod daemon_support;
use daemon_support::RedisServer;
use redis::Value;
use tokio_util::sync::CancellationToken;

/// Work that answers with the MD5 of the message's `content`, keyed by its `report_id`, and
/// counts what it was given. Consumer "stuck" never finishes a message: it stands for a
/// consumer that died holding its messages.
struct Md5Work {
    processed: AtomicUsize,
    stuck: bool,
}

impl Work for Md5Work {
    async fn process(&self, message: Message) -> Option<ResultEntry> {
        if self.stuck {
            std::future::pending::<()>().await;
        }
        self.processed.fetch_add(1, Ordering::Relaxed);
        let report = String::from_utf8_lossy(&message.fields["report_id"]).into_owned();
        let digest = hashsieve_core::digest::digest_bytes(
            &message.fields["content"],
            hashsieve_core::digest::DigestSet::NONE.with(hashsieve_core::digest::DigestKind::Md5),
        );
        Some(ResultEntry {
            key: report.clone(),
            fields: vec![
                ("report_id".into(), report.into_bytes()),
                ("md5".into(), digest.md5.unwrap().to_vec()),
            ],
        })
    }
}

fn spec(consumer: &str) -> StreamSpec {
    StreamSpec {
        input: "reports".into(),
        group: "hashsieve".into(),
        consumer: consumer.into(),
        output: "results".into(),
        batch: 16,
        concurrency: 4,
        ordered: false,
        block: Duration::from_millis(100),
        claim_idle: Duration::from_millis(500),
        marker_ttl: Duration::from_secs(3600),
    }
}

fn push(connection: &mut redis::Connection, report: &str, content: &[u8]) {
    let _: String = redis::cmd("XADD")
        .arg("reports")
        .arg("*")
        .arg("report_id")
        .arg(report)
        .arg("content")
        .arg(content)
        .query(connection)
        .unwrap();
}

/// Every result in the output stream: report id → MD5s published for it.
fn results(connection: &mut redis::Connection) -> BTreeMap<String, Vec<Vec<u8>>> {
    let Value::Array(entries) =
        redis::cmd("XRANGE").arg("results").arg("-").arg("+").query(connection).unwrap()
    else {
        panic!("XRANGE gives an array")
    };
    let mut results: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for entry in entries {
        let Value::Array(pair) = entry else { panic!() };
        let Value::Array(fields) = &pair[1] else { panic!() };
        let field = |name: &str| {
            let at = fields.iter().position(|f| *f == Value::BulkString(name.as_bytes().to_vec())).unwrap();
            let Value::BulkString(value) = &fields[at + 1] else { panic!() };
            value.clone()
        };
        results.entry(String::from_utf8(field("report_id")).unwrap()).or_default().push(field("md5"));
    }
    results
}

/// Messages delivered and not acknowledged (0 before the group exists).
fn pending(connection: &mut redis::Connection) -> i64 {
    let Ok(Value::Array(summary)) = redis::cmd("XPENDING").arg("reports").arg("hashsieve").query(connection)
    else {
        return 0;
    };
    let Value::Int(count) = summary[0] else { panic!() };
    count
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn md5(content: &[u8]) -> Vec<u8> {
    hashsieve_core::digest::digest_bytes(content, "md5".parse().unwrap()).md5.unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_share_the_work_and_publish_each_report_once() {
    let server = RedisServer::start();
    let client = redis::Client::open(server.url.as_str()).unwrap();
    let mut connection = client.get_connection().unwrap();
    // 300 reports, 30 of them sent twice (a reporter's retry): 300 results, no more.
    for i in 0..300 {
        push(&mut connection, &format!("r-{i}"), format!("content {i}").as_bytes());
    }
    for i in (0..300).step_by(10) {
        push(&mut connection, &format!("r-{i}"), format!("content {i}").as_bytes());
    }
    let shutdown = CancellationToken::new();
    let works: Vec<Arc<Md5Work>> =
        (0..2).map(|_| Arc::new(Md5Work { processed: AtomicUsize::new(0), stuck: false })).collect();
    let consumers: Vec<_> = works
        .iter()
        .enumerate()
        .map(|(i, work)| {
            tokio::spawn(consume(client.clone(), spec(&format!("c{i}")), Arc::clone(work), shutdown.clone()))
        })
        .collect();
    wait_until("every report answered and acknowledged", || {
        results(&mut connection).len() == 300 && pending(&mut connection) == 0
    })
    .await;
    shutdown.cancel();
    for consumer in consumers {
        consumer.await.unwrap().unwrap();
    }
    let results = results(&mut connection);
    for i in 0..300 {
        let report = format!("r-{i}");
        assert_eq!(
            results[&report],
            vec![md5(format!("content {i}").as_bytes())],
            "{report}: one right result"
        );
    }
    let shares: Vec<usize> = works.iter().map(|w| w.processed.load(Ordering::Relaxed)).collect();
    assert_eq!(shares.iter().sum::<usize>(), 330, "every message processed once: {shares:?}");
    assert!(shares.iter().all(|&n| n > 30), "both consumers took part: {shares:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_messages_of_a_consumer_that_stops_are_taken_over() {
    let server = RedisServer::start();
    let client = redis::Client::open(server.url.as_str()).unwrap();
    let mut connection = client.get_connection().unwrap();
    for i in 0..40 {
        push(&mut connection, &format!("r-{i}"), format!("content {i}").as_bytes());
    }
    // "dead" reads messages and never acknowledges them.
    let dead_stop = CancellationToken::new();
    let dead = Arc::new(Md5Work { processed: AtomicUsize::new(0), stuck: true });
    let dead_task = tokio::spawn(consume(client.clone(), spec("dead"), Arc::clone(&dead), dead_stop.clone()));
    wait_until("the dead consumer holds messages", || pending(&mut connection) > 0).await;
    dead_task.abort();
    let held = pending(&mut connection);
    assert!(held > 0 && held <= 4, "it held its concurrency's worth: {held}");

    let shutdown = CancellationToken::new();
    let alive = Arc::new(Md5Work { processed: AtomicUsize::new(0), stuck: false });
    let task = tokio::spawn(consume(client.clone(), spec("alive"), Arc::clone(&alive), shutdown.clone()));
    wait_until("every report answered", || {
        results(&mut connection).len() == 40 && pending(&mut connection) == 0
    })
    .await;
    shutdown.cancel();
    task.await.unwrap().unwrap();
    let results = results(&mut connection);
    assert!(results.values().all(|md5s| md5s.len() == 1), "one result each");
    assert_eq!(alive.processed.load(Ordering::Relaxed), 40);
}
