//! The daemon under re-check load: how many re-checks per second one daemon makes with
//! `checks_per_host = 2` (many cases on two hosts, a 1 s interval), and what those re-checks do
//! to the latency of the review queue and of hash matching (phases with re-checks and without,
//! alternating, on the same store).

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use hashsieve_testkit::origin::{Behaviour, Origin};
use serde_json::json;
use thread_priority::{NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy, thread_native_id};

use crate::daemon::{Daemon, Settings, Site};
use crate::hosting;

/// Two hosts with `per_host` URLs each, all showing one picture, reported and confirmed.
pub fn busy_site(
    site: &Site,
    settings: &Settings,
    per_host: usize,
    seed: u64,
) -> anyhow::Result<Vec<Origin>> {
    let body = hosting::jpeg(seed.wrapping_mul(7919) + 1)?;
    // The hosts stand for other machines: started from a thread at SCHED_IDLE, their threads
    // (which inherit it) give way to the daemon and to the client measuring it, as they would
    // if they were elsewhere.
    let hosts = std::thread::spawn(move || {
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        thread_priority::set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle)
            .map_err(|err| anyhow::anyhow!("SCHED_IDLE for the simulated hosts: {err:?}"))?;
        anyhow::Ok(
            [7, 8]
                .iter()
                .map(|&third| {
                    let address = IpAddr::V4(Ipv4Addr::new(127, 0, third, 1));
                    Origin::start_on(address, Behaviour::Serve(body.clone()))
                })
                .collect::<Vec<Origin>>(),
        )
    })
    .join()
    .expect("starting the hosts panicked")?;
    let daemon = site.start(&Settings { checks: false, ..settings.clone() })?;
    let urls: Vec<String> =
        hosts.iter().flat_map(|host| (0..per_host).map(move |i| host.url(&format!("/c{i}.jpg")))).collect();
    // Four reporters at once: the reports are fetched and hashed one by one otherwise.
    let groups = std::thread::scope(|scope| {
        let workers: Vec<_> = urls
            .chunks(urls.len().div_ceil(4))
            .enumerate()
            .map(|(w, chunk)| {
                let daemon = &daemon;
                scope.spawn(move || -> anyhow::Result<Vec<u64>> {
                    chunk
                        .iter()
                        .enumerate()
                        .map(|(i, url)| daemon.report(&format!("w{w}-{i}"), url))
                        .collect()
                })
            })
            .collect();
        let mut groups = Vec::new();
        for worker in workers {
            groups.extend(worker.join().expect("a reporter panicked")?);
        }
        anyhow::Ok(groups)
    })?;
    let mut groups = groups;
    groups.sort_unstable();
    groups.dedup();
    for group in groups {
        daemon.confirm(group)?;
    }
    anyhow::ensure!(daemon.cases()?.len() == urls.len(), "a case per URL");
    Ok(hosts)
}

/// Re-checks per second over `span`, from the daemon's counter, after a second's warm-up.
pub fn check_rate(daemon: &Daemon, span: Duration) -> anyhow::Result<f64> {
    std::thread::sleep(Duration::from_secs(2));
    let (before, started) = (daemon.counter("hashsieve_takedown_checks_total")?, Instant::now());
    std::thread::sleep(span);
    let after = daemon.counter("hashsieve_takedown_checks_total")?;
    Ok((after - before) / started.elapsed().as_secs_f64())
}

/// Latencies (ms) of `GET /v1/review/groups` and of `POST /v1/match/hashes` with one MD5,
/// `calls` of each, interleaved.
pub fn latencies(daemon: &Daemon, calls: usize) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let hashes = json!({"hashes": [{"kind": "md5", "value": "d41d8cd98f00b204e9800998ecf8427e"}]});
    let (mut review, mut matching) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
    for _ in 0..calls {
        let started = Instant::now();
        daemon.ok("GET", "/v1/review/groups", None)?;
        review.push(started.elapsed().as_secs_f64() * 1000.0);
        let started = Instant::now();
        daemon.ok("POST", "/v1/match/hashes", Some(&hashes))?;
        matching.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok((review, matching))
}

/// The median and p99 of latencies (nearest rank).
pub struct Quantiles {
    pub median: f64,
    pub p99: f64,
}

impl Quantiles {
    pub fn of(values: &mut [f64]) -> Quantiles {
        values.sort_by(f64::total_cmp);
        let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
        Quantiles { median: at(0.5), p99: at(0.99) }
    }
}
