//! The analysts' review page through the real `hashsieved`, over plain HTTP: signing in and
//! out, the security headers of every answer, CSRF and origin checks, the queue, a group page,
//! the step-by-step preview (greyscale and blurred first, each view in the audit log), a
//! verdict exported to the matching API, its undo withdrawing the export, and a split.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use hashsieve_core::hashes::HashKind;
use hashsieve_core::import::ImportedEntry;
use hashsieve_core::index::dir::IndexDir;
use hashsieve_core::index::{IndexBuilder, ListOptions};
use serde_json::{Value, json};

mod daemon_support;
use daemon_support::{
    Hashsieved, md5sum, pdq_distance, reencoded, request, request_with, sample, sha256_hex,
};

const REPORTER: &str = "reporter-token-for-page-tests";
const ANALYST: &str = "analyst-token-for-page-tests";
const MATCHER: &str = "match-token-for-page-tests";

fn start(dir: &Path) -> Hashsieved {
    let index = dir.join("index");
    let mut builder = IndexBuilder::new();
    let hot = builder.add_list(ListOptions::new("hot")).unwrap();
    let md5 = hex::decode(md5sum(&sample("wee.jpg"))).unwrap();
    builder.add(hot, &ImportedEntry::new(HashKind::Md5, md5)).unwrap();
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
             [review_ui]\nenabled = true\ncategories = [\"A\", \"B\"]\nundo_secs = 60\n\
             priority_sources = [\"police\"]\n\
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

/// A browser's view of the page: its session cookie, sent with every request.
struct Browser {
    address: SocketAddr,
    cookie: Option<String>,
}

impl Browser {
    fn get(&self, path: &str) -> daemon_support::Response {
        let cookie = self.cookie.as_ref().map(|c| format!("Cookie: {c}"));
        request_with(
            self.address,
            "GET",
            path,
            None,
            &cookie.iter().map(String::as_str).collect::<Vec<_>>(),
            b"",
        )
    }

    fn post(&self, path: &str, form: &[(&str, &str)], extra: &[&str]) -> daemon_support::Response {
        let body: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let mut headers = vec!["Content-Type: application/x-www-form-urlencoded".to_string()];
        headers.extend(self.cookie.iter().map(|c| format!("Cookie: {c}")));
        headers.extend(extra.iter().map(|h| h.to_string()));
        request_with(
            self.address,
            "POST",
            path,
            None,
            &headers.iter().map(String::as_str).collect::<Vec<_>>(),
            body.as_bytes(),
        )
    }
}

fn text(response: &daemon_support::Response) -> String {
    String::from_utf8_lossy(&response.body).into_owned()
}

/// The value of the first `name="csrf"` field on a page.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
    page[at..].split('"').next().unwrap().to_string()
}

/// The headers every answer of the page must carry.
fn assert_protected(response: &daemon_support::Response, what: &str) {
    let csp = response.header("content-security-policy").unwrap_or_else(|| panic!("{what}: no CSP"));
    for directive in ["default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"]
    {
        assert!(csp.contains(directive), "{what}: {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert_eq!(response.header("cache-control"), Some("no-store"), "{what}");
    assert_eq!(response.header("x-frame-options"), Some("DENY"), "{what}");
    assert_eq!(response.header("referrer-policy"), Some("no-referrer"), "{what}");
}

fn report(address: SocketAddr, id: &str, content: &[u8]) -> Value {
    let response = request(
        address,
        "POST",
        &format!("/v1/reports/content?id={id}&source=form"),
        Some(REPORTER),
        content,
    );
    assert_eq!(response.status, 200, "{}", text(&response));
    response.json()
}

fn known_by_md5(address: SocketAddr, md5: &str) -> bool {
    let body = json!({"hashes": [{"kind": "md5", "value": md5}]}).to_string();
    let answer = request(address, "POST", "/v1/match/hashes", Some(MATCHER), body.as_bytes()).json();
    answer["results"][0]["outcome"] == "known"
}

#[test]
fn an_analyst_signs_in_reveals_step_by_step_judges_undoes_and_splits() {
    let temp = tempfile::tempdir().unwrap();
    let daemon = start(temp.path());
    let address: SocketAddr = daemon.announced("http://").unwrap().parse().unwrap();
    let read = |name: &str| std::fs::read(sample(name)).unwrap();
    let q1050 = read("q1050.jpg");
    let copies = [reencoded(&q1050, 80), reencoded(&q1050, 70)];
    assert!(copies.iter().all(|copy| pdq_distance(&q1050, copy) <= 31));
    let first = report(address, "r1", &q1050);
    for (n, copy) in copies.iter().enumerate() {
        assert_eq!(report(address, &format!("r{}", n + 2), copy)["group"], first["group"]);
    }
    let other = report(address, "r9", &read("square-256x256.jpg"));
    let (group, item) = (first["group"].as_u64().unwrap(), first["item"].as_u64().unwrap());

    // Signed out: every page sends to the sign-in form, which carries the headers too.
    let mut browser = Browser { address, cookie: None };
    let queue = browser.get("/review/");
    assert_eq!((queue.status, queue.header("location")), (303, Some("/review/sign-in")));
    assert_protected(&queue, "a redirect");
    let form = browser.get("/review/sign-in");
    assert_eq!(form.status, 200);
    assert_protected(&form, "the sign-in form");
    assert!(!text(&form).contains("<script>") && !text(&form).contains("style="), "nothing inline");
    assert_eq!(browser.get(&format!("/review/items/{item}/preview/blurred")).status, 303);

    // A wrong token is refused; a review token signs in with a strict cookie.
    assert_eq!(browser.post("/review/sign-in", &[("token", "not-a-token")], &[]).status, 401);
    assert_eq!(
        browser.post("/review/sign-in", &[("token", REPORTER)], &[]).status,
        401,
        "not a review token"
    );
    let cross_site = browser.post("/review/sign-in", &[("token", ANALYST)], &["Sec-Fetch-Site: cross-site"]);
    assert_eq!(cross_site.status, 403);
    let signed = browser.post("/review/sign-in", &[("token", ANALYST)], &["Origin: http://test"]);
    assert_eq!(signed.status, 303, "{}", text(&signed));
    let cookie = signed.header("set-cookie").unwrap().to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/review/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    browser.cookie = Some(cookie.split(';').next().unwrap().to_string());

    // The queue: both groups, the larger with its three items.
    let queue = browser.get("/review/");
    assert_eq!(queue.status, 200);
    assert_protected(&queue, "the queue");
    let page = text(&queue);
    assert!(page.contains("2 groups await review"), "{page}");
    assert!(page.contains(&format!("href=\"/review/groups/{group}\"")), "{page}");
    assert!(page.contains("alice"));
    let largest = text(&browser.get("/review/?order=largest"));
    let (at_group, at_other) = (
        largest.find(&format!("/review/groups/{group}\"")).unwrap(),
        largest.find(&format!("/review/groups/{}\"", other["group"])).unwrap(),
    );
    assert!(at_group < at_other, "the three-item group first");
    // The one-item group reported again, by the police: first by priority.
    let by_police = request(
        address,
        "POST",
        "/v1/reports/content?id=r10&source=police",
        Some(REPORTER),
        &read("square-256x256.jpg"),
    );
    assert_eq!(by_police.json()["group"], other["group"], "{}", text(&by_police));
    let priority = text(&browser.get("/review/?order=priority"));
    assert!(priority.contains("reported by police first"), "{priority}");
    let (at_group, at_other) = (
        priority.find(&format!("/review/groups/{group}\"")).unwrap(),
        priority.find(&format!("/review/groups/{}\"", other["group"])).unwrap(),
    );
    assert!(at_other < at_group, "the police's report first");

    // The group page shows the representative blurred, and every member.
    let group_page = browser.get(&format!("/review/groups/{group}"));
    assert_eq!(group_page.status, 200);
    let page = text(&group_page);
    assert!(page.contains("/preview/blurred"), "{page}");
    for member in item..item + 3 {
        assert!(page.contains(&format!("Item {member}")), "every member: {page}");
    }
    let csrf = csrf_of(&page);

    // Each step is an image made in memory; the first has no colour and is far from the
    // original.
    let mut sizes = Vec::new();
    for step in ["blurred", "softened", "greyscale", "colour", "full-size"] {
        let preview = browser.get(&format!("/review/items/{item}/preview/{step}"));
        assert_eq!(preview.status, 200, "{step}: {}", text(&preview));
        assert_protected(&preview, step);
        assert_ne!(preview.body, q1050, "never the original bytes");
        let image = image::load_from_memory(&preview.body).unwrap().to_rgb8();
        let coloured = image.pixels().any(|p| p[0].abs_diff(p[1]) > 8 || p[1].abs_diff(p[2]) > 8);
        assert_eq!(coloured, step == "colour" || step == "full-size", "{step}");
        sizes.push(image.dimensions());
        if step == "blurred" {
            assert!(pdq_distance(&q1050, &preview.body) > 64, "{step} is far from the original by PDQ");
        }
    }
    let original = image::load_from_memory(&q1050).unwrap();
    assert_eq!(sizes[4], (original.width(), original.height()), "full size");
    assert!(sizes[0].0.max(sizes[0].1) <= 256, "small: {:?}", sizes[0]);
    assert_eq!(browser.get(&format!("/review/items/{item}/preview/raw")).status, 404);

    // The analyst's own defaults: previews start softened, at 128 pixels. Only the gentler
    // steps and the sizes offered are taken.
    let settings = text(&browser.get("/review/settings"));
    assert!(settings.contains("value=\"blurred\" id=\"first-blurred\" checked"), "{settings}");
    for refused in [
        [("first_step", "colour"), ("preview_pixels", "128")],
        [("first_step", "softened"), ("preview_pixels", "4000")],
    ] {
        let mut form = refused.to_vec();
        form.push(("csrf", &csrf));
        assert_eq!(browser.post("/review/settings", &form, &[]).status, 422, "{refused:?}");
    }
    assert_eq!(
        browser
            .post("/review/settings", &[("first_step", "softened"), ("preview_pixels", "128")], &[])
            .status,
        403
    );
    let saved = browser.post(
        "/review/settings",
        &[("first_step", "softened"), ("preview_pixels", "128"), ("csrf", &csrf)],
        &[],
    );
    assert_eq!((saved.status, saved.header("location")), (303, Some("/review/settings?saved=true")));
    assert!(
        text(&browser.get("/review/settings?saved=true"))
            .contains("value=\"softened\" id=\"first-softened\" checked")
    );
    let other_item = other["item"].as_u64().unwrap();
    let other_page = text(&browser.get(&format!("/review/groups/{}", other["group"])));
    assert!(
        other_page.contains(&format!("src=\"/review/items/{other_item}/preview/softened\"")),
        "{other_page}"
    );
    assert!(other_page.contains("data-steps=\"softened greyscale colour full-size\""), "{other_page}");
    let small = browser.get(&format!("/review/items/{other_item}/preview/softened"));
    let small = image::load_from_memory(&small.body).unwrap();
    assert!(small.width().max(small.height()) <= 128, "{}x{}", small.width(), small.height());
    // Kept in the triage store (tests/triage.rs holds them across a restart); back to the
    // hotline's defaults for the rest of this test.
    let restored = browser.post(
        "/review/settings",
        &[("first_step", "blurred"), ("preview_pixels", "256"), ("csrf", &csrf)],
        &[],
    );
    assert_eq!(restored.status, 303);

    // A state change without the session's CSRF token, or from another site, is refused.
    let verdict_path = format!("/review/groups/{group}/verdict");
    assert_eq!(browser.post(&verdict_path, &[("kind", "legal")], &[]).status, 403);
    assert_eq!(browser.post(&verdict_path, &[("kind", "legal"), ("csrf", &"0".repeat(64))], &[]).status, 403);
    for foreign in [
        ["Origin: http://evil.example", "X-Nothing: 1"],
        ["Origin: null", "X-Nothing: 1"],
        ["Origin: http://test", "Sec-Fetch-Site: same-site"],
    ] {
        let refused = browser.post(&verdict_path, &[("kind", "legal"), ("csrf", &csrf)], &foreign);
        assert_eq!(refused.status, 403, "{foreign:?}");
    }
    assert_eq!(
        browser.post(&verdict_path, &[("kind", "illegal"), ("category", "Z"), ("csrf", &csrf)], &[]).status,
        422
    );
    let md5 = md5sum(&sample("q1050.jpg"));
    assert!(!known_by_md5(address, &md5), "nothing was judged");

    // Judged illegal: on to the next group, and the picture is known to the matching API.
    let judged = browser.post(&verdict_path, &[("kind", "illegal"), ("category", "B"), ("csrf", &csrf)], &[]);
    assert_eq!(
        (judged.status, judged.header("location")),
        (303, Some(&*format!("/review/next?after={group}")))
    );
    let next = browser.get(&format!("/review/next?after={group}"));
    assert_eq!(next.header("location"), Some(&*format!("/review/groups/{}", other["group"])));
    assert!(known_by_md5(address, &md5), "exported");
    let queue = text(&browser.get("/review/"));
    assert!(
        queue.contains("1 groups await review") && !queue.contains(&format!("/review/groups/{group}\"")),
        "{queue}"
    );
    assert!(queue.contains("Undo (z)"), "the undo is offered");

    // Undone: the group is back, the export withdrawn, the history says so.
    let undone = browser.post("/review/undo", &[("csrf", &csrf)], &[]);
    assert_eq!(undone.status, 303, "{}", text(&undone));
    assert!(!known_by_md5(address, &md5), "withdrawn");
    assert!(text(&browser.get("/review/")).contains("2 groups await review"));
    let history = text(&browser.get(&format!("/review/groups/{group}")));
    assert!(history.contains("verdict taken back by alice"), "{history}");
    assert_eq!(browser.post("/review/undo", &[("csrf", &csrf)], &[]).status, 409, "once");

    // Split: the second copy goes to a group of its own.
    let moving = (item + 2).to_string();
    let split =
        browser.post(&format!("/review/groups/{group}/split"), &[("csrf", &csrf), ("item", &moving)], &[]);
    assert_eq!(split.status, 303, "{}", text(&split));
    assert!(text(&browser.get("/review/")).contains("3 groups await review"));

    // Signed out: the cookie no longer opens anything.
    assert_eq!(browser.post("/review/sign-out", &[("csrf", &csrf)], &[]).status, 303);
    assert_eq!(browser.get("/review/").status, 303);
    assert_eq!(browser.get(&format!("/review/items/{item}/preview/colour")).status, 303);
    daemon.terminate();
    drop(daemon);

    // Every view is an audit line: analyst, item, step.
    let log = std::fs::read_to_string(temp.path().join("hashsieved.log")).unwrap();
    let views: Vec<(String, u64, String)> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "audit" && line["fields"]["message"] == "view")
        .map(|line| {
            let fields = &line["fields"];
            (
                fields["analyst"].as_str().unwrap().to_string(),
                fields["item"].as_u64().unwrap(),
                fields["step"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let steps: Vec<&str> =
        views.iter().filter(|(a, i, _)| a == "alice" && *i == item).map(|(_, _, s)| s.as_str()).collect();
    assert_eq!(steps, ["blurred", "softened", "greyscale", "colour", "full-size"], "{log}");
    assert!(!log.contains(&hex::encode(&q1050[..64])), "no content in the log");
}
