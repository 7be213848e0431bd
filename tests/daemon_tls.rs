//! End-to-end tests of hashsieved over HTTPS with `curl` as the client: server certificates,
//! client certificates required or optional, and refusals of clients that do not qualify.
//! The certificates are made for each run by rcgen: a CA, the server's, a client's, and a
//! client's from another CA.

use std::path::Path;
use std::process::Command;

use hashsieve_core::hashes::HashKind;
use hashsieve_core::import::ImportedEntry;
use hashsieve_core::index::{IndexBuilder, ListOptions};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};

mod daemon_support;
use daemon_support::{Hashsieved, md5sum, sample};

/// A certificate and its key.
struct Issued {
    key: KeyPair,
    certificate: rcgen::Certificate,
}

/// Writes `NAME.pem` and `NAME.key` for a certificate signed by `issuer`, or a self-signed CA.
fn issue(dir: &Path, name: &str, issuer: Option<&Issued>, purpose: ExtendedKeyUsagePurpose) -> Issued {
    let key = KeyPair::generate().unwrap();
    let names = if purpose == ExtendedKeyUsagePurpose::ServerAuth {
        vec!["localhost".to_string(), "127.0.0.1".to_string()]
    } else {
        Vec::new()
    };
    let mut params = CertificateParams::new(names).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    let certificate = match issuer {
        None => {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.self_signed(&key).unwrap()
        }
        Some(issuer) => {
            params.extended_key_usages = vec![purpose];
            params.signed_by(&key, &issuer.certificate, &issuer.key).unwrap()
        }
    };
    std::fs::write(dir.join(format!("{name}.pem")), certificate.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    Issued { key, certificate }
}

struct Daemon {
    _process: Hashsieved,
    url: String,
    dir: tempfile::TempDir,
}

/// A daemon over HTTPS listing `wee.jpg`'s MD5, with `tls_extra` added to its `[http.tls]`.
fn start(tls_extra: &str) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let ca = issue(path, "ca", None, ExtendedKeyUsagePurpose::Any);
    issue(path, "server", Some(&ca), ExtendedKeyUsagePurpose::ServerAuth);
    issue(path, "client", Some(&ca), ExtendedKeyUsagePurpose::ClientAuth);
    let other_ca = issue(path, "other-ca", None, ExtendedKeyUsagePurpose::Any);
    issue(path, "stranger", Some(&other_ca), ExtendedKeyUsagePurpose::ClientAuth);

    let mut builder = IndexBuilder::new();
    let hot = builder.add_list(ListOptions::new("hot")).unwrap();
    let md5 = hex::decode(md5sum(&sample("wee.jpg"))).unwrap();
    builder.add(hot, &ImportedEntry::new(HashKind::Md5, md5)).unwrap();
    builder.write_to_path(&path.join("lists.hsi")).unwrap();
    let config = path.join("hashsieved.toml");
    let tls_extra = tls_extra.replace("DIR", &path.display().to_string());
    std::fs::write(
        &config,
        format!(
            "index = {:?}\n[http]\nlisten = \"127.0.0.1:0\"\n[http.tls]\ncert = {:?}\nkey = {:?}\n{tls_extra}\n",
            path.join("lists.hsi"),
            path.join("server.pem"),
            path.join("server.key"),
        ),
    )
    .unwrap();
    let process = Hashsieved::start(&config, 1);
    let url = format!("https://{}", process.announced("https://").expect("an HTTPS address"));
    Daemon { _process: process, url, dir }
}

impl Daemon {
    /// Runs curl against `path` with `args`; its exit code and body.
    fn curl(&self, path: &str, args: &[&str]) -> (i32, String) {
        let dir = self.dir.path().display().to_string();
        let args: Vec<String> = args.iter().map(|arg| arg.replace("DIR", &dir)).collect();
        let output = Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "10"])
            .args(&args)
            .arg(format!("{}{path}", self.url))
            .output()
            .expect("curl runs");
        (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

#[test]
fn https_with_a_server_certificate() {
    let daemon = start("");
    assert_eq!(daemon.curl("/healthz", &["--cacert", "DIR/ca.pem"]), (0, "ok\n".to_string()));
    let wee = format!("@{}", sample("wee.jpg").display());
    let (code, body) = daemon.curl("/v1/match/content", &["--cacert", "DIR/ca.pem", "--data-binary", &wee]);
    assert_eq!(code, 0);
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["outcome"], "known", "{body}");
    // A client that does not trust the CA refuses the server (curl: 60, peer certificate).
    assert_eq!(daemon.curl("/healthz", &[]).0, 60);
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = daemon.url.replace("https://", "http://");
    let output =
        Command::new("curl").args(["--silent", "--max-time", "5", &format!("{plain}/healthz")]).output();
    assert_ne!(output.unwrap().stdout, b"ok\n");
}

#[test]
fn client_certificates_required() {
    let daemon = start("client_ca = \"DIR/ca.pem\"");
    let with = ["--cacert", "DIR/ca.pem", "--cert", "DIR/client.pem", "--key", "DIR/client.key"];
    assert_eq!(daemon.curl("/healthz", &with), (0, "ok\n".to_string()));
    let (code, _) = daemon.curl("/healthz", &["--cacert", "DIR/ca.pem"]);
    assert_ne!(code, 0, "no client certificate: refused");
    let stranger = ["--cacert", "DIR/ca.pem", "--cert", "DIR/stranger.pem", "--key", "DIR/stranger.key"];
    assert_ne!(daemon.curl("/healthz", &stranger).0, 0, "a certificate from another CA: refused");
}

#[test]
fn client_certificates_optional() {
    let daemon = start("client_ca = \"DIR/ca.pem\"\nclient_cert_optional = true");
    assert_eq!(daemon.curl("/healthz", &["--cacert", "DIR/ca.pem"]), (0, "ok\n".to_string()));
    let with = ["--cacert", "DIR/ca.pem", "--cert", "DIR/client.pem", "--key", "DIR/client.key"];
    assert_eq!(daemon.curl("/healthz", &with), (0, "ok\n".to_string()));
    let stranger = ["--cacert", "DIR/ca.pem", "--cert", "DIR/stranger.pem", "--key", "DIR/stranger.key"];
    assert_ne!(daemon.curl("/healthz", &stranger).0, 0, "a certificate, if presented, must be valid");
}
