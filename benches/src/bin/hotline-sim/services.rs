//! The processes a run needs — its own `redis-server` and `hashsieved` daemons — started in a
//! directory of their own and killed when dropped, so that every run starts from empty
//! streams, an empty verdict memory and the index as built.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hashsieve_core::digest::{DigestKind, DigestSet, digest_bytes};
use hashsieve_core::index::IndexBuilder;
use hashsieve_core::index::dir::IndexDir;

use crate::queue::{HASHED, Queue, REPORTS};

/// A child process, killed and reaped when dropped.
struct Service {
    name: String,
    child: Child,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What every run shares.
pub struct Setup {
    pub hashsieved: PathBuf,
    pub work: PathBuf,
    pub index: IndexBuilder,
    /// The analyst's bearer token; the deciding daemon knows its SHA-256.
    pub token: String,
}

/// How a run's daemons are set up.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Hashing daemons, each with one worker.
    pub hashers: usize,
    /// The deciding daemon's `[triage] near_known_is_known`.
    pub near_known_is_known: bool,
}

/// One run's Redis and daemons: a deciding daemon (the verdict memory and review API, no
/// hashing) and `hashers` hashing daemons following the same index directory read-only.
pub struct Pipeline {
    pub redis_url: String,
    /// The deciding daemon's HTTP address.
    pub review: SocketAddr,
    pub dir: PathBuf,
    // Fields drop in order: the daemons before the Redis they use.
    daemons: Vec<Service>,
    redis: Service,
}

impl Pipeline {
    pub fn start(setup: &Setup, name: &str, shape: Shape) -> anyhow::Result<Pipeline> {
        let dir = setup.work.join(name);
        std::fs::create_dir_all(&dir)?;
        let index = dir.join("index");
        IndexDir::create(&index, &setup.index).context("creating the index directory")?;
        let (redis, redis_url) = start_redis(&dir)?;
        let sha256 = DigestSet::NONE.with(DigestKind::Sha256);
        let token_sha256 =
            hex::encode(digest_bytes(setup.token.as_bytes(), sha256).sha256.expect("SHA-256 was asked for"));
        let ingest = |consumer: &str, workers: usize| {
            format!(
                "[ingest]\nredis_url = \"{redis_url}\"\nconsumer = \"{consumer}\"\nworkers = {workers}\n\
                 batch = 16\nblock_ms = 100\n"
            )
        };
        let decider = format!(
            "index = {index:?}\nwritable = true\n[http]\nlisten = \"127.0.0.1:0\"\n\
             [triage]\nstore = {store:?}\nexport_list = \"hotline\"\nnear_known_is_known = {near}\n{ingest}\
             [[tokens]]\nid = \"analyst\"\nsha256 = \"{token_sha256}\"\nroles = [\"review\"]\n",
            store = dir.join("triage.redb"),
            near = shape.near_known_is_known,
            ingest = ingest("decider", 0),
        );
        // The deciding daemon first: it takes the index directory's write lock; the others follow.
        let (decider, review) = start_daemon(setup, &dir, "decider", &decider)?;
        let mut daemons = vec![decider];
        for number in 0..shape.hashers {
            let consumer = format!("hash-{number}");
            let config = format!(
                "index = {index:?}\nreload_check_ms = 200\n[http]\nlisten = \"127.0.0.1:0\"\n{}",
                ingest(&consumer, 1)
            );
            daemons.push(start_daemon(setup, &dir, &consumer, &config)?.0);
        }
        // Ready when every consumer has joined its group: from then on nothing waits on a start.
        let mut queue = Queue::connect(&redis_url)?;
        let started = Instant::now();
        // The daemon's default consumer group names.
        while queue.consumers(REPORTS, "hashsieve-hashing") < shape.hashers
            || queue.consumers(HASHED, "hashsieve-triage") < 1
        {
            if started.elapsed() > Duration::from_secs(30) {
                bail!("the daemons did not join their consumer groups; see the logs in {}", dir.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Pipeline { redis_url, review, dir, daemons, redis })
    }

    /// The CPU time each process of the run has used so far, by name.
    pub fn cpu_seconds(&self) -> Vec<(String, f64)> {
        let services = self.daemons.iter().chain([&self.redis]);
        services
            .filter_map(|service| Some((service.name.clone(), cpu_seconds(&service.child.id().to_string())?)))
            .collect()
    }
}

/// The CPU time (user and system) process `pid` (or `self`) has used, from /proc (Linux).
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name before ')' may hold spaces; utime and stime are the 12th and 13th
    // fields after it.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // /proc counts in USER_HZ, which Linux fixes at 100 for user space.
    Some(ticks as f64 / 100.0)
}

/// A `redis-server` on loopback without persistence: the streams live as long as the run.
fn start_redis(dir: &Path) -> anyhow::Result<(Service, String)> {
    let port = hashsieve_testkit::free_port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .current_dir(dir)
        .stdout(std::fs::File::create(dir.join("redis.log"))?)
        .stderr(Stdio::null())
        .spawn()
        .context("starting redis-server (Debian package redis-server)")?;
    let service = Service { name: "redis-server".into(), child };
    let url = format!("redis://127.0.0.1:{port}/");
    let client = redis::Client::open(url.as_str())?;
    let started = Instant::now();
    while client.get_connection().and_then(|mut c| redis::cmd("PING").query::<String>(&mut c)).is_err() {
        if started.elapsed() > Duration::from_secs(10) {
            bail!("redis-server did not start on port {port}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((service, url))
}

/// Starts `hashsieved` with `config` and waits for its `listening on http://…` line; its log
/// goes to `<name>.log`.
fn start_daemon(
    setup: &Setup,
    dir: &Path,
    name: &str,
    config: &str,
) -> anyhow::Result<(Service, SocketAddr)> {
    let config_path = dir.join(format!("{name}.toml"));
    std::fs::write(&config_path, config)?;
    let log = dir.join(format!("{name}.log"));
    let mut child = Command::new(&setup.hashsieved)
        .arg("--config")
        .arg(&config_path)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .with_context(|| format!("starting {}", setup.hashsieved.display()))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let service = Service { name: name.into(), child };
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let Some(address) = line.trim().strip_prefix("listening on http://") else {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        bail!("hashsieved {name} did not start:\n{log}");
    };
    Ok((service, address.parse().with_context(|| format!("the address in {line:?}"))?))
}
