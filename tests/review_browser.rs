//! The analysts' review page in a real browser: Debian's Chromium, headless, driven through
//! ChromeDriver (WebDriver) against the real `hashsieved`. An analyst signs in, sees the queue
//! built from reports of the sample images, reveals the representative step by step (each
//! step found in the daemon's audit log), splits a member out, judges a group of five with
//! one key (its items then known to the matching API), undoes it, and signs out. Screenshots
//! of the queue and of a group page are written under the test's temporary directory and
//! checked to be more than a blank page (`HASHSIEVE_SCREENSHOTS=DIR` keeps a copy in DIR, as
//! `docs/screenshots/` has them).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::{Client, ClientBuilder, Locator};
use hashsieve_core::index::dir::IndexDir;
use hashsieve_core::index::{IndexBuilder, ListOptions};
use serde_json::{Value, json};

mod daemon_support;
use daemon_support::{Hashsieved, md5sum, pdq_distance, reencoded, request, sample, sha256_hex};

const REPORTER: &str = "reporter-token-for-browser-tests";
const ANALYST: &str = "analyst-token-for-browser-tests";
const MATCHER: &str = "match-token-for-browser-tests";

fn start_daemon(dir: &Path) -> Hashsieved {
    let index = dir.join("index");
    let mut builder = IndexBuilder::new();
    builder.add_list(ListOptions::new("hot")).unwrap();
    IndexDir::create(&index, &builder).unwrap();
    let token = |id: &str, secret: &str, role: &str| {
        format!("[[tokens]]\nid = \"{id}\"\nsha256 = \"{}\"\nroles = [\"{role}\"]\n", sha256_hex(secret))
    };
    let config = dir.join("hashsieved.toml");
    std::fs::write(
        &config,
        format!(
            "index = {index:?}\nwritable = true\n[http]\nlisten = \"127.0.0.1:0\"\n\
             [triage]\nstore = {:?}\nexport_list = \"hotline\"\n\
             [review_ui]\nenabled = true\ncategories = [\"A\", \"B\", \"C\"]\nundo_secs = 120\n\
             [logging]\njson = true\n{}{}{}",
            dir.join("triage.redb"),
            token("form", REPORTER, "report"),
            token("alice", ANALYST, "review"),
            token("platform", MATCHER, "match"),
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("hashsieved.log")).unwrap();
    Hashsieved::start_with(
        Command::new(env!("CARGO_BIN_EXE_hashsieved")).stderr(Stdio::from(log)),
        &config,
        1,
    )
}

/// ChromeDriver on a port of its own, killed when dropped.
struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    fn start() -> ChromeDriver {
        let port = hashsieve_testkit::free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver; tests/run.sh installs it)");
        let address: SocketAddr = ([127, 0, 0, 1], port).into();
        let started = Instant::now();
        while std::net::TcpStream::connect(address).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        ChromeDriver { child, url: format!("http://{address}") }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &ChromeDriver, profile: &Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    let args = [
        "--headless=new".to_string(),
        "--no-sandbox".to_string(),
        "--disable-gpu".to_string(),
        "--disable-dev-shm-usage".to_string(),
        "--window-size=1280,1000".to_string(),
        format!("--user-data-dir={}", profile.display()),
    ];
    capabilities.insert("goog:chromeOptions".into(), json!({ "binary": "/usr/bin/chromium", "args": args }));
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a browser session")
}

/// Presses `key` wherever the focus is, as a person at the keyboard would.
async fn press(client: &Client, key: char) {
    let keys = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value: key })
        .then(KeyAction::Up { value: key });
    client.perform_actions(keys).await.unwrap();
}

/// Waits up to ten seconds for `ready`.
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut ready: impl FnMut() -> F) {
    let started = Instant::now();
    while !ready().await {
        assert!(started.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn path_of(client: &Client) -> String {
    client.current_url().await.unwrap().path().to_string()
}

/// Takes a screenshot into `file` and checks it shows something: not one colour, and with
/// text-like contrast.
async fn screenshot(client: &Client, file: PathBuf) {
    let png = client.screenshot().await.unwrap();
    std::fs::write(&file, &png).unwrap();
    // For the documentation: `HASHSIEVE_SCREENSHOTS=docs/screenshots cargo test …` keeps a copy.
    if let Some(keep) = std::env::var_os("HASHSIEVE_SCREENSHOTS") {
        std::fs::write(Path::new(&keep).join(file.file_name().unwrap()), &png).unwrap();
    }
    let image = image::load_from_memory(&png).unwrap().to_luma8();
    let pixels: Vec<f64> = image.pixels().map(|p| f64::from(p[0])).collect();
    let mean = pixels.iter().sum::<f64>() / pixels.len() as f64;
    let deviation = (pixels.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / pixels.len() as f64).sqrt();
    let dark = pixels.iter().filter(|&&p| (p - mean).abs() > 64.0).count();
    assert!(
        deviation > 5.0 && dark > 500,
        "{}: blank ({deviation:.1}, {dark} contrasting pixels)",
        file.display()
    );
}

/// The audit log's `view` lines for `item`: the steps, in order.
fn viewed_steps(log: &Path, item: u64) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "audit" && line["fields"]["message"] == "view")
        .filter(|line| line["fields"]["analyst"] == "alice" && line["fields"]["item"] == item)
        .map(|line| line["fields"]["step"].as_str().unwrap().to_string())
        .collect()
}

fn report(address: SocketAddr, id: &str, content: &[u8]) -> Value {
    let response = request(
        address,
        "POST",
        &format!("/v1/reports/content?id={id}&source=web-form"),
        Some(REPORTER),
        content,
    );
    assert_eq!(response.status, 200);
    response.json()
}

fn known(address: SocketAddr, md5: &str) -> bool {
    let body = json!({"hashes": [{"kind": "md5", "value": md5}]}).to_string();
    request(address, "POST", "/v1/match/hashes", Some(MATCHER), body.as_bytes()).json()["results"][0]["outcome"]
        == "known"
}

fn pending_groups(address: SocketAddr) -> u64 {
    request(address, "GET", "/v1/review/groups", Some(ANALYST), b"").json()["pending"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analyst_reviews_in_chromium_by_keyboard() {
    let temp = tempfile::tempdir().unwrap();
    let daemon = start_daemon(temp.path());
    let address: SocketAddr = daemon.announced("http://").unwrap().parse().unwrap();
    let log = temp.path().join("hashsieved.log");

    // A group of six near-duplicates (one will be split off, leaving five to judge), and
    // another picture.
    let q1050 = std::fs::read(sample("q1050.jpg")).unwrap();
    let first = report(address, "r-1", &q1050);
    let group = first["group"].as_u64().unwrap();
    for (n, quality) in [90, 80, 70, 60, 50].into_iter().enumerate() {
        let copy = reencoded(&q1050, quality);
        assert!(pdq_distance(&q1050, &copy) <= 31);
        assert_eq!(report(address, &format!("r-{}", n + 2), &copy)["group"], group, "a near-duplicate joins");
    }
    let other = report(address, "r-9", &std::fs::read(sample("square-256x256.jpg")).unwrap());
    assert_eq!(pending_groups(address), 2);

    let driver = ChromeDriver::start();
    let client = browser(&driver, &temp.path().join("profile")).await;
    let base = format!("http://{address}");

    // Sign in.
    client.goto(&format!("{base}/review/")).await.unwrap();
    assert_eq!(path_of(&client).await, "/review/sign-in");
    client.find(Locator::Id("token")).await.unwrap().send_keys(ANALYST).await.unwrap();
    client.find(Locator::Css("form.sign-in button")).await.unwrap().click().await.unwrap();
    eventually("the queue", || async { path_of(&client).await == "/review/" }).await;

    // The queue, from the reports.
    let page = client.source().await.unwrap();
    assert!(page.contains("2 groups await review"), "{page}");
    assert!(page.contains(&format!("Group {group}")) && page.contains(&format!("Group {}", other["group"])));
    screenshot(&client, temp.path().join("queue.png")).await;

    // The group page starts blurred; each press of r reveals a step, each step a view in the
    // audit log; b blurs again.
    client.find(Locator::Id("start")).await.unwrap().click().await.unwrap();
    eventually("the group page", || async { path_of(&client).await == format!("/review/groups/{group}") })
        .await;
    let item = first["item"].as_u64().unwrap();
    let loaded = || async {
        let state = client
            .execute("const i = document.getElementById('preview'); return [i.complete && i.naturalWidth > 0, document.getElementById('step').textContent];", vec![])
            .await
            .unwrap();
        (state[0].as_bool().unwrap(), state[1].as_str().unwrap().to_string())
    };
    eventually("the blurred preview", || async { loaded().await == (true, "blurred".into()) }).await;
    screenshot(&client, temp.path().join("group.png")).await;
    for (n, step) in ["softened", "greyscale", "colour"].into_iter().enumerate() {
        press(&client, 'r').await;
        eventually(step, || async { loaded().await == (true, step.to_string()) }).await;
        eventually("its audit line", || async { viewed_steps(&log, item).len() == n + 2 }).await;
    }
    assert_eq!(viewed_steps(&log, item), ["blurred", "softened", "greyscale", "colour"]);
    let revealed = client.find(Locator::Id("revealed")).await.unwrap().text().await.unwrap();
    assert_eq!(revealed, "Images revealed today: 0", "as it was when the page was drawn");
    press(&client, 'b').await;
    eventually("blurred again", || async { loaded().await == (true, "blurred".into()) }).await;

    // Another member in the preview: j twice to the second, v shows it blurred, r reveals it.
    let members = client.find_all(Locator::Css("tr.member")).await.unwrap().len();
    assert_eq!(members, 6);
    press(&client, 'j').await;
    press(&client, 'j').await;
    let second = client
        .execute("return Number(document.querySelectorAll('tr.member')[1].dataset.item);", vec![])
        .await
        .unwrap()
        .as_u64()
        .unwrap();
    assert_ne!(second, item);
    let shown = || async {
        client
            .execute("return Number(document.getElementById('preview').dataset.item);", vec![])
            .await
            .unwrap()
    };
    press(&client, 'v').await;
    eventually("the member, blurred", || async {
        shown().await == json!(second) && loaded().await == (true, "blurred".into())
    })
    .await;
    press(&client, 'r').await;
    eventually("the member softened", || async { loaded().await == (true, "softened".into()) }).await;
    eventually("its audit lines", || async { viewed_steps(&log, second) == ["blurred", "softened"] }).await;

    // At 200% zoom (a viewport half as wide) nothing needs scrolling sideways, and every
    // control has a name to read out.
    client.set_window_size(640, 1000).await.unwrap();
    let fits = "return [document.documentElement.scrollWidth, window.innerWidth];";
    let widths = client.execute(fits, vec![]).await.unwrap();
    assert!(widths[1].as_u64().unwrap() <= 660, "the window is narrow: {widths}");
    assert!(widths[0].as_u64() <= widths[1].as_u64(), "no sideways scrolling at 200%: {widths}");
    let unnamed = client
        .execute(
            "return Array.from(document.querySelectorAll('a, button, input:not([type=hidden]), img'))
               .filter(e => !((e.getAttribute('aria-label') || '') + (e.alt || '') + e.textContent
                 + Array.from(e.labels || []).map(l => l.textContent).join('')).trim())
               .map(e => e.outerHTML);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(unnamed, json!([]), "controls without a name");
    client.set_window_size(1280, 1000).await.unwrap();

    // Split the last member off with the keyboard: j to it, x to select, s to split.
    for _ in 2..members {
        press(&client, 'j').await;
    }
    press(&client, 'x').await;
    press(&client, 's').await;
    eventually("the split", || async { pending_groups(address) == 3 }).await;
    eventually("the group again", || async {
        client.find_all(Locator::Css("tr.member")).await.unwrap().len() == 5
    })
    .await;
    let page = client.source().await.unwrap();
    assert!(
        page.contains("Images revealed today: <strong>2</strong>"),
        "the reveals are counted: two images"
    );

    // One key judges the five: illegal, category A. The page moves on to the next group.
    let md5 = md5sum(&sample("q1050.jpg"));
    assert!(!known(address, &md5));
    press(&client, '1').await;
    eventually("the next group", || async { path_of(&client).await != format!("/review/groups/{group}") })
        .await;
    assert!(path_of(&client).await.starts_with("/review/groups/"), "{}", path_of(&client).await);
    assert!(known(address, &md5), "exported, known to the matching API");
    assert_eq!(pending_groups(address), 2);

    // z undoes it: the group is back, the export withdrawn.
    press(&client, 'z').await;
    eventually("the undo", || async { path_of(&client).await == format!("/review/groups/{group}") }).await;
    assert!(!known(address, &md5), "withdrawn");
    assert_eq!(pending_groups(address), 3);

    // Signed out, the page is refused until signing in again.
    client.find(Locator::Css("header.bar form button")).await.unwrap().click().await.unwrap();
    eventually("the sign-in page", || async { path_of(&client).await == "/review/sign-in" }).await;
    client.goto(&format!("{base}/review/groups/{group}")).await.unwrap();
    assert_eq!(path_of(&client).await, "/review/sign-in");
    client.close().await.unwrap();
}
