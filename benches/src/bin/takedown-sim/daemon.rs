//! One `hashsieved` holding a triage store, with the takedown loop's settings, and the few API
//! calls the simulation makes: it is started on a configuration written here, killed when
//! dropped (or with SIGKILL on purpose), and restarted on the same store.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};
use hashsieve_benches::http;
use hashsieve_core::digest::{DigestKind, DigestSet, digest_bytes};
use hashsieve_core::index::dir::IndexDir;
use hashsieve_core::index::{IndexBuilder, ListOptions};
use serde_json::{Value, json};

/// The `[takedown]` settings a run varies.
#[derive(Debug, Clone)]
pub struct Settings {
    pub interval_secs: u64,
    pub jitter_percent: u8,
    pub block_after_secs: u64,
    pub checks_per_host: usize,
    /// `takedown.max_checks_per_sec`.
    pub max_checks_per_sec: u32,
    /// Whether this daemon re-checks at all (`takedown.checks`).
    pub checks: bool,
    /// More `[takedown]` keys (home country, IP databases).
    pub takedown: String,
    /// Tables after `[takedown]`'s keys: `[takedown.partners]`, `[[takedown.contacts]]`.
    pub tables: String,
}

/// Where a run's daemon lives: its directory (index, store, configuration, log).
pub struct Site {
    pub hashsieved: PathBuf,
    pub dir: PathBuf,
    pub token: String,
}

impl Site {
    /// A new directory with an empty index (one list, nothing in it: every case here comes
    /// from an analyst's verdict).
    pub fn create(hashsieved: &Path, dir: PathBuf, token: &str) -> anyhow::Result<Site> {
        std::fs::create_dir_all(&dir)?;
        let mut builder = IndexBuilder::new();
        builder.add_list(ListOptions::new("external"))?;
        IndexDir::create(&dir.join("index"), &builder).context("creating the index directory")?;
        Ok(Site { hashsieved: hashsieved.to_path_buf(), dir, token: token.to_string() })
    }

    /// Starts the daemon on this site's store with `settings`.
    pub fn start(&self, settings: &Settings) -> anyhow::Result<Daemon> {
        let sha256 = DigestSet::NONE.with(DigestKind::Sha256);
        let token_sha256 =
            hex::encode(digest_bytes(self.token.as_bytes(), sha256).sha256.expect("SHA-256 was asked for"));
        let Settings {
            interval_secs,
            jitter_percent,
            block_after_secs,
            checks_per_host,
            max_checks_per_sec,
            checks,
            takedown,
            tables,
        } = settings;
        let config = format!(
            "index = {index:?}\nwritable = true\n[http]\nlisten = \"127.0.0.1:0\"\n\
             [triage]\nstore = {store:?}\n\
             [takedown]\ncheck_intervals_secs = [{interval_secs}]\njitter_percent = {jitter_percent}\n\
             block_after_secs = {block_after_secs}\nchecks_per_host = {checks_per_host}\nchecks = {checks}\n\
             max_checks_per_sec = {max_checks_per_sec}\n\
             notice_retry_secs = 1\n{takedown}\n{tables}\n\
             [fetch]\nallow_networks = [\"127.0.0.0/8\"]\ntotal_timeout_ms = 5000\n\
             [[tokens]]\nid = \"sim\"\nsha256 = \"{token_sha256}\"\nroles = [\"report\", \"review\", \"blocklist\", \"match\"]\n",
            index = self.dir.join("index"),
            store = self.dir.join("triage.redb"),
        );
        let config_path = self.dir.join("hashsieved.toml");
        std::fs::write(&config_path, config)?;
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("hashsieved.log"))?;
        let mut child = Command::new(&self.hashsieved)
            .arg("--config")
            .arg(&config_path)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.hashsieved.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut daemon = Daemon { child, address: "127.0.0.1:0".parse()?, token: self.token.clone() };
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let Some(address) = line.trim().strip_prefix("listening on http://") else {
            let log = std::fs::read_to_string(self.dir.join("hashsieved.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            bail!("hashsieved did not start in {}:\n{}", self.dir.display(), tail.join("\n"));
        };
        daemon.address = address.parse().with_context(|| format!("the address in {line:?}"))?;
        Ok(daemon)
    }
}

/// A running daemon, killed and reaped when dropped.
pub struct Daemon {
    child: Child,
    pub address: SocketAddr,
    token: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// SIGKILL (what `Child::kill` sends on Unix), and reaped.
    pub fn kill9(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// A call that must answer 200; its JSON.
    pub fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let (status, body) = http::request(self.address, method, path, &self.token, body)?;
        if status != 200 {
            bail!("{method} {path}: {status} {}", String::from_utf8_lossy(&body));
        }
        serde_json::from_slice(&body).with_context(|| format!("{method} {path}: not JSON"))
    }

    /// Reports `url` as report `id`; the review group its content joined.
    pub fn report(&self, id: &str, url: &str) -> anyhow::Result<u64> {
        let answer = self.ok("POST", "/v1/reports", Some(&json!({"id": id, "url": url})))?;
        answer["group"].as_u64().with_context(|| format!("report {id} ({url}): no group in {answer}"))
    }

    /// Confirms group `group` illegal, category A.
    pub fn confirm(&self, group: u64) -> anyhow::Result<()> {
        let verdict = json!({"kind": "illegal", "category": "A"});
        self.ok("POST", &format!("/v1/review/groups/{group}/verdict"), Some(&verdict)).map(drop)
    }

    /// Every case, in id order (the pages followed).
    pub fn cases(&self) -> anyhow::Result<Vec<Value>> {
        let mut cases: Vec<Value> = Vec::new();
        loop {
            let after = cases.last().and_then(|case| case["id"].as_u64());
            let path = match after {
                Some(id) => format!("/v1/takedown/cases?limit=500&after={id}"),
                None => "/v1/takedown/cases?limit=500".to_string(),
            };
            let page = self.ok("GET", &path, None)?;
            let page = page["cases"].as_array().context("no cases in the page")?.clone();
            let full = page.len() == 500;
            cases.extend(page);
            if !full {
                return Ok(cases);
            }
        }
    }

    /// A case and its history, read together.
    pub fn detail(&self, id: u64) -> anyhow::Result<(Value, Vec<Value>)> {
        let detail = self.ok("GET", &format!("/v1/takedown/cases/{id}"), None)?;
        let history = detail["history"].as_array().context("no history")?.clone();
        Ok((detail["case"].clone(), history))
    }

    /// The URLs on the block list now.
    pub fn block_list(&self) -> anyhow::Result<Vec<String>> {
        let list = self.ok("GET", "/v1/takedown/blocklist?format=json", None)?;
        let entries = list["entries"].as_array().context("no entries in the block list")?;
        Ok(entries.iter().filter_map(|entry| Some(entry["url"].as_str()?.to_string())).collect())
    }

    /// The sum of a counter's samples in `/metrics`, over all its labels.
    pub fn counter(&self, name: &str) -> anyhow::Result<f64> {
        let (status, body) = http::request(self.address, "GET", "/metrics", &self.token, None)?;
        anyhow::ensure!(status == 200, "GET /metrics: {status}");
        let text = String::from_utf8_lossy(&body);
        let mut total = 0.0;
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else { continue };
            let metric = series.split('{').next().unwrap_or_default();
            if metric == name {
                total += value.parse::<f64>().unwrap_or(0.0);
            }
        }
        Ok(total)
    }
}
