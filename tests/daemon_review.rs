//! The hotline's HTTP API through the real `hashsieved`: reports submitted by content and by
//! URL (fetched from a local origin the test's policy allows, hostile URLs refused), decided
//! known / previously assessed / new against core's PDQ distance as the oracle, grouped for
//! review, assessed by an analyst, exported to the hotline's list and matched as known from
//! then on by the matching API; splits, single-item verdicts, corrections that withdraw an
//! export, history, roles, and a restart that keeps it all.

use std::path::Path;
use std::process::{Command, Stdio};

use hashsieve_core::hashes::HashKind;
use hashsieve_core::import::ImportedEntry;
use hashsieve_core::index::dir::IndexDir;
use hashsieve_core::index::{IndexBuilder, ListOptions};
use hashsieve_core::signals::Signals;
use hashsieve_triage::Triage;
use serde_json::{Value, json};

mod daemon_support;
use daemon_support::{Hashsieved, md5sum, origin, pdq_distance, reencoded, request, sample, sha256_hex};

const REPORTER: &str = "reporter-token-for-tests";
const ANALYST: &str = "analyst-token-for-tests";
const MATCHER: &str = "match-token-for-tests";

/// A writable index whose list `hot` has the MD5s of `wee.jpg` and `q0122.jpg`, a triage store exporting to
/// `hotline`, a fetch policy that allows 127.0.0.1, and a token per role; its log is appended
/// to `hashsieved.log` in `dir`.
fn start(dir: &Path) -> Hashsieved {
    let index = dir.join("index");
    if !index.exists() {
        let mut builder = IndexBuilder::new();
        let hot = builder.add_list(ListOptions::new("hot")).unwrap();
        for name in ["wee.jpg", "q0122.jpg"] {
            let md5 = hex::decode(md5sum(&sample(name))).unwrap();
            builder.add(hot, &ImportedEntry::new(HashKind::Md5, md5)).unwrap();
        }
        IndexDir::create(&index, &builder).unwrap();
    }
    let config = dir.join("hashsieved.toml");
    let token = |id: &str, secret: &str, role: &str| {
        format!("[[tokens]]\nid = \"{id}\"\nsha256 = \"{}\"\nroles = [\"{role}\"]\n", sha256_hex(secret))
    };
    std::fs::write(
        &config,
        format!(
            "index = {index:?}\nwritable = true\n[http]\nlisten = \"127.0.0.1:0\"\n\
             [triage]\nstore = {:?}\nexport_list = \"hotline\"\n\
             [fetch]\nallow_networks = [\"127.0.0.1/32\"]\ntotal_timeout_ms = 5000\n\
             [logging]\njson = true\n{}{}{}",
            dir.join("triage.redb"),
            token("form", REPORTER, "report"),
            token("alice", ANALYST, "review"),
            token("platform", MATCHER, "match"),
        ),
    )
    .unwrap();
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("hashsieved.log")).unwrap();
    Hashsieved::start_with(
        Command::new(env!("CARGO_BIN_EXE_hashsieved")).stderr(Stdio::from(log)),
        &config,
        1,
    )
}

struct Api {
    address: std::net::SocketAddr,
}

impl Api {
    fn of(daemon: &Hashsieved) -> Api {
        Api { address: daemon.announced("http://").unwrap().parse().unwrap() }
    }

    /// The status and JSON body of a request.
    fn call(&self, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> (u16, Value) {
        let response = request(self.address, method, path, token, body);
        (response.status, response.json())
    }

    fn ok(&self, method: &str, path: &str, token: &str, body: &[u8]) -> Value {
        let (status, json) = self.call(method, path, Some(token), body);
        assert_eq!(status, 200, "{method} {path}: {json}");
        json
    }

    fn report(&self, id: &str, content: &[u8]) -> Value {
        self.ok("POST", &format!("/v1/reports/content?id={id}&source=form"), REPORTER, content)
    }

    fn verdict(&self, path: &str, verdict: Value) -> Value {
        self.ok("POST", path, ANALYST, verdict.to_string().as_bytes())
    }
}

#[test]
fn reports_are_grouped_assessed_exported_and_then_known() {
    let temp = tempfile::tempdir().unwrap();
    let read = |name: &str| std::fs::read(sample(name)).unwrap();
    let (q1050, square) = (read("q1050.jpg"), read("square-256x256.jpg"));
    let (q1050_again, square_again) = (reencoded(&q1050, 80), reencoded(&square, 85));
    // The oracle: near copies within PDQ's threshold of 31, the two pictures far apart.
    assert!(pdq_distance(&q1050, &q1050_again) <= 31);
    assert!(pdq_distance(&square, &square_again) <= 31);
    assert!(pdq_distance(&q1050, &square) > 31);
    let site = origin(square.clone());
    let daemon = start(temp.path());
    let api = Api::of(&daemon);

    // Reports by content and by URL.
    let first = api.report("r1", &q1050);
    assert_eq!(first["outcome"], "new", "{first}");
    assert_eq!(first["hashes"]["md5"], md5sum(&sample("q1050.jpg")));
    let copy = api.report("r2", &q1050_again);
    assert_eq!(copy["outcome"], "new");
    assert_eq!(copy["group"], first["group"], "a near-duplicate joins the pending group");
    assert_ne!(copy["item"], first["item"]);
    let url = format!("http://{site}/pictures/a.jpg");
    let fetched =
        api.ok("POST", "/v1/reports", REPORTER, json!({"id": "r3", "url": url}).to_string().as_bytes());
    assert_eq!(fetched["outcome"], "new", "{fetched}");
    assert_eq!(fetched["final_url"], url);
    assert_eq!(fetched["hashes"]["md5"], md5sum(&sample("square-256x256.jpg")));
    assert_ne!(fetched["group"], first["group"], "another picture, another group");
    let listed = api.report("r4", &read("wee.jpg"));
    assert_eq!(listed["outcome"], "known");
    assert_eq!(listed["matches"][0]["list"], "hot");
    assert_eq!(api.report("r4b", &read("q0122.jpg"))["outcome"], "known");

    // A redelivery gets its first answer; a reused id with other content is refused; hostile
    // URLs are refused and recorded nowhere.
    assert_eq!(api.report("r1", &q1050), first);
    assert_eq!(api.call("POST", "/v1/reports/content?id=r1", Some(REPORTER), &square).0, 409);
    for hostile in ["http://169.254.169.254/latest/meta-data/", "http://0x7f000002/", "file:///etc/passwd"] {
        let body = json!({"id": "hostile", "url": hostile}).to_string();
        let (status, problem) = api.call("POST", "/v1/reports", Some(REPORTER), body.as_bytes());
        assert_eq!(
            (status, problem["type"].as_str().unwrap()),
            (422, "https://hashsieve.invalid/problems/url-refused"),
            "{hostile}"
        );
    }
    assert_eq!(api.call("GET", "/v1/reports/hostile", Some(ANALYST), b"").0, 404);

    // Roles: reporters report, analysts review, matchers match.
    assert_eq!(api.call("GET", "/v1/review/groups", Some(REPORTER), b"").0, 403);
    assert_eq!(api.call("GET", "/v1/review/groups", None, b"").0, 401);
    assert_eq!(api.call("POST", "/v1/reports/content?id=x", Some(MATCHER), &q1050).0, 403);
    assert_eq!(api.call("POST", "/v1/reports/content?id=x", Some(ANALYST), &q1050).0, 403);

    // A third member of the first group, reported (it says) before the others, and a second
    // report of r2's bytes; ten more reports of the fetched picture's bytes, for the second.
    let q1050_more = reencoded(&q1050, 90);
    assert!(pdq_distance(&q1050, &q1050_more) <= 31);
    let path = "/v1/reports/content?id=r2b&source=partner&reported_ms=1000";
    let early = api.ok("POST", path, REPORTER, &q1050_more);
    assert_eq!((&early["outcome"], &early["group"]), (&json!("new"), &first["group"]), "{early}");
    assert_eq!(api.report("r2c", &q1050_again)["item"], copy["item"]);
    for n in 0..10 {
        assert_eq!(api.report(&format!("r3-{n}"), &square)["item"], fetched["item"]);
    }

    // The queue: two groups, each shown by a representative with the reports of every member,
    // the earliest first, to open them by: ten at most, and how many there are.
    let queue = api.ok("GET", "/v1/review/groups", ANALYST, b"");
    assert_eq!(queue["pending"], 2, "{queue}");
    let groups = queue["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(
        (groups[0]["group"].clone(), groups[0]["members"].clone()),
        (first["group"].clone(), json!(3))
    );
    let shown: Vec<(&str, &str, &Value)> = groups[0]["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r["source"].as_str().unwrap(), &r["item"]))
        .collect();
    assert_eq!(
        shown,
        [
            ("r2b", "partner", &early["item"]),
            ("r1", "form", &first["item"]),
            ("r2", "form", &copy["item"]),
            ("r2c", "form", &copy["item"])
        ],
        "{queue}"
    );
    assert_eq!(groups[0]["reports_total"], 4);
    assert_eq!(groups[0]["reports"][0]["reported_ms"], 1000);
    let times: Vec<u64> =
        groups[0]["reports"].as_array().unwrap().iter().map(|r| r["reported_ms"].as_u64().unwrap()).collect();
    assert!(times.is_sorted(), "{times:?}");
    let second_reports = groups[1]["reports"].as_array().unwrap();
    assert_eq!((second_reports.len(), &groups[1]["reports_total"]), (10, &json!(11)), "{queue}");
    assert_eq!(
        (&second_reports[0]["id"], &second_reports[0]["source"], &second_reports[0]["item"]),
        (&json!("r3"), &json!(url), &fetched["item"])
    );
    let paged = api.ok("GET", "/v1/review/groups?limit=1", ANALYST, b"");
    assert_eq!(paged["groups"].as_array().unwrap().len(), 1);
    let after = paged["next"].as_u64().unwrap();
    let rest = api.ok("GET", &format!("/v1/review/groups?limit=1&after={after}"), ANALYST, b"");
    assert_eq!(rest["groups"][0]["group"], fetched["group"]);

    // The analyst judges the first group: both members get the verdict and are exported.
    let group = first["group"].as_u64().unwrap();
    let path = format!("/v1/review/groups/{group}/verdict");
    let judged = api.verdict(&path, json!({"kind": "illegal", "category": "A", "note": "seen"}));
    let mut items = vec![first["item"].clone(), copy["item"].clone(), early["item"].clone()];
    items.sort_by_key(|item| item.as_u64());
    assert_eq!(judged["items"], Value::Array(items.clone()));
    let exported: Vec<Value> =
        judged["exported"].as_array().unwrap().iter().map(|e| e["item"].clone()).collect();
    assert_eq!(exported, items);
    assert!(judged["exported"].as_array().unwrap().iter().all(|e| e["category"] == "A"));
    assert_eq!(api.call("POST", &path, Some(ANALYST), br#"{"kind":"legal"}"#).0, 409, "judged once");
    let bad =
        [json!({"kind": "illegal"}), json!({"kind": "legal", "category": "A"}), json!({"kind": "maybe"})];
    for verdict in bad {
        let status = api.call("POST", "/v1/items/1/verdict", Some(ANALYST), verdict.to_string().as_bytes()).0;
        assert!([400, 422].contains(&status), "{verdict}: {status}");
    }

    // From now on the picture is known to every client of the index, by its exported digest.
    let matched = api.ok("POST", "/v1/match/content", MATCHER, &q1050);
    assert_eq!(matched["outcome"], "known", "{matched}");
    let hotline_md5 =
        matched["matches"].as_array().unwrap().iter().find(|m| m["list"] == "hotline" && m["kind"] == "md5");
    assert_eq!(hotline_md5.unwrap()["entry_id"], format!("triage:{}", first["item"]));
    let again = api.report("r5", &q1050);
    assert_eq!(
        (again["outcome"].as_str(), again["matches"][0]["list"].as_str()),
        (Some("known"), Some("hotline"))
    );
    // A new near copy is not in the list by digest, but by the exported PDQ hash: known, by
    // default, with the category the analyst gave.
    let third = reencoded(&q1050, 65);
    assert!(pdq_distance(&q1050, &third) <= 31);
    let near = api.report("r6", &third);
    assert_eq!(near["outcome"], "known", "{near}");
    let by_pdq = near["matches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["entry_id"] == format!("triage:{}", first["item"]));
    assert_eq!(
        by_pdq.map(|m| (m["kind"].as_str(), m["category"].as_str())),
        Some((Some("pdq"), Some("A"))),
        "{near}"
    );

    // A split: the analyst finds a member of the second group is not the same as the rest.
    let joined = api.report("r7", &square_again);
    assert_eq!(joined["group"], fetched["group"]);
    let second = fetched["group"].as_u64().unwrap();
    let detail = api.ok("GET", &format!("/v1/review/groups/{second}"), ANALYST, b"");
    assert_eq!(detail["items"].as_array().unwrap().len(), 2);
    let body = json!({"items": [joined["item"]]}).to_string();
    let split = api.ok("POST", &format!("/v1/review/groups/{second}/split"), ANALYST, body.as_bytes());
    let third_group = split["new_group"].as_u64().unwrap();
    let both = api.ok("GET", "/v1/review/groups", ANALYST, b"");
    let pending: Vec<u64> =
        both["groups"].as_array().unwrap().iter().map(|g| g["group"].as_u64().unwrap()).collect();
    assert_eq!(pending, vec![second, third_group]);
    let whole = json!({"items": [fetched["item"]]}).to_string();
    assert_eq!(
        api.call("POST", &format!("/v1/review/groups/{second}/split"), Some(ANALYST), whole.as_bytes()).0,
        422
    );
    api.verdict(&format!("/v1/review/groups/{second}/verdict"), json!({"kind": "legal"}));
    let item = joined["item"].as_u64().unwrap();
    let single = api.verdict(&format!("/v1/items/{item}/verdict"), json!({"kind": "unclear"}));
    assert_eq!(single["exported"], json!([]), "only illegal verdicts are exported");
    assert_eq!(api.ok("GET", "/v1/review/groups", ANALYST, b"")["pending"], 0);
    let history = api.ok("GET", &format!("/v1/items/{item}"), ANALYST, b"");
    let events: Vec<&str> =
        history["history"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["submitted", "grouped", "grouped", "assessed"], "{history}");
    assert_eq!(history["reports"], json!(["r7"]));

    // A correction withdraws the export: the bytes are no longer known by digest.
    let corrected = api.verdict(&format!("/v1/items/{}/verdict", first["item"]), json!({"kind": "legal"}));
    assert_eq!(corrected["exported"], json!([{"item": first["item"], "category": null}]));
    let rematched = api.ok("POST", "/v1/match/content", MATCHER, &q1050);
    assert!(rematched["matches"].as_array().unwrap().iter().all(|m| m["kind"] != "md5"), "{rematched}");
    let report = api.ok("GET", "/v1/reports/r1", ANALYST, b"");
    assert_eq!(report["report"]["item"], first["item"]);
    let last = report["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["event"].as_str(), last["list"].as_str(), &last["category"]),
        (Some("exported"), Some("hotline"), &Value::Null)
    );

    // A restart keeps the store and the list.
    drop(daemon);
    let mut daemon = start(temp.path());
    let api = Api::of(&daemon);
    assert_eq!(api.ok("GET", "/v1/reports/r3", ANALYST, b"")["report"]["item"], fetched["item"]);
    let copy_known = api.ok("POST", "/v1/match/content", MATCHER, &q1050_again);
    assert_eq!(copy_known["outcome"], "known", "the copy's export survives the restart: {copy_known}");
    assert_eq!(api.report("r1", &q1050), first, "decisions are kept");

    // A crop of the listed picture reported as r4b: PDQ no longer matches the list, but its
    // keypoints align with r4b's (the oracle: core's alignment), kept across the restart as a
    // listed copy, so the crop is known through r4b.
    let listed = read("q0122.jpg");
    let crop = cropped(&listed, 0.05);
    assert!(pdq_distance(&listed, &crop) > 31, "PDQ alone would not find it");
    let options = Triage::signal_options();
    let query = |bytes: &[u8]| Signals::from_bytes(bytes, &options);
    let stored = query(&listed).keypoints.unwrap().without_mirrored();
    let alignment = hashsieve_core::keypoints::align(query(&crop).keypoints.as_ref().unwrap(), &stored);
    assert!(alignment.is_some_and(|alignment| alignment.is_same_picture()));
    assert_eq!(api.ok("POST", "/v1/match/content", MATCHER, &crop)["outcome"], "unknown");
    let reframed = api.report("r8", &crop);
    assert_eq!(reframed["outcome"], "known", "{reframed}");
    // The list's match is r4b's (its MD5); `via` says why the crop is taken for r4b's content:
    // keypoints, with the crop's own PDQ distance and the alignment's figures.
    let alignment = alignment.unwrap();
    let [found] = reframed["matches"].as_array().unwrap().as_slice() else { panic!("{reframed}") };
    let via = &found["via"];
    assert_eq!(
        (&found["list"], &found["kind"], &found["distance"], &found["via_report"]),
        (&json!("hot"), &json!("md5"), &json!(0), &json!("r4b")),
        "{reframed}"
    );
    assert_eq!((&via["report"], &via["how"]), (&json!("r4b"), &json!("keypoints")), "{reframed}");
    assert_eq!(via["pdq_distance"], pdq_distance(&listed, &crop), "{reframed}");
    let figures = &via["alignment"];
    assert_eq!(
        (&figures["agreeing"], &figures["mirrored"], &figures["spread_cells"], &figures["unexplained_cells"]),
        (&json!(alignment.agreeing), &json!(alignment.mirrored), &json!(alignment.spread_cells), &json!(0)),
        "{reframed}"
    );
    let near =
        |figure: &Value, expected: f32| (figure.as_f64().unwrap() - f64::from(expected)).abs() <= 0.0005;
    for axis in 0..2 {
        assert!(near(&figures["scale"][axis], alignment.scale[axis]), "{reframed} {alignment:?}");
        assert!(near(&figures["shift"][axis], alignment.shift[axis]), "{reframed} {alignment:?}");
    }
    assert!(near(&figures["stored_coverage"], alignment.stored_coverage), "{reframed} {alignment:?}");
    // The report's history, the record of the decision, says the same, and so does its audit line.
    let history = api.ok("GET", "/v1/reports/r8", ANALYST, b"");
    assert_eq!(history["history"][0]["matches"], reframed["matches"], "{history}");
    daemon.terminate();
    daemon.child.wait().unwrap();
    let log = std::fs::read_to_string(temp.path().join("hashsieved.log")).unwrap();
    let why = |report: &str| -> Vec<String> {
        log.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["target"] == "audit" && line["fields"]["message"] == "report")
            .filter(|line| line["fields"]["report"] == report)
            .map(|line| line["fields"]["why"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        why("r8"),
        [format!(
            "list hot md5 distance 0 via report r4b by keypoints (own pdq distance {}, {} agreeing keypoints)",
            pdq_distance(&listed, &crop),
            alignment.agreeing
        )]
    );
    assert_eq!(why("r7"), [format!("group {}", joined["group"])], "a new report names its group");
}

/// `bytes` with `share` of its width cut off the left and of its height off the top, as a
/// JPEG of quality 90.
fn cropped(bytes: &[u8], share: f64) -> Vec<u8> {
    let image = image::load_from_memory(bytes).unwrap().to_rgb8();
    let (left, top) = ((image.width() as f64 * share) as u32, (image.height() as f64 * share) as u32);
    let crop = image::imageops::crop_imm(&image, left, top, image.width() - left, image.height() - top);
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&crop.to_image()).unwrap();
    out
}
