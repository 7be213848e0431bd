//! Arbitrary bytes from an ICAP client, through the daemon's real connection handling: every
//! connection must end, the replies must be whole ICAP responses of bounded size, and nothing
//! may panic — whatever the heads, `Encapsulated` offsets, chunk sizes or previews say.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hashsieve_core::hashes::HashKind;
use hashsieve_core::import::ImportedEntry;
use hashsieve_core::index::{IndexBuilder, ListOptions};
use hashsieve_core::matcher::Matcher;
use hashsieve_daemon::config::Config;
use hashsieve_daemon::state::AppState;
use hashsieve_daemon::icap::Icap;
use hashsieve_daemon::icap::connection::Connection;
use hashsieve_daemon::icap::handler::serve_connection;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// The most a body may be held: an echo to a client without 204 sends it back once.
const MAX_HELD: usize = 64 << 10;

fn icap() -> Arc<Icap> {
    static ICAP: OnceLock<Arc<Icap>> = OnceLock::new();
    Arc::clone(ICAP.get_or_init(|| {
        let mut builder = IndexBuilder::new();
        let hot = builder.add_list(ListOptions::new("hot")).unwrap();
        // The MD5 of "known", so that a body can match.
        let md5 = hex::decode("c90ae688b2a3b1fd0751fd743eb385cd").unwrap();
        builder.add(hot, &ImportedEntry::new(HashKind::Md5, md5)).unwrap();
        let matcher = Matcher::from_bytes(builder.to_vec()).unwrap();
        let mut config = Config::for_index("/nonexistent".into());
        config.limits.max_body_bytes = MAX_HELD as u64;
        config.limits.header_timeout_secs = 1;
        config.limits.request_timeout_secs = 2;
        config.icap.idle_timeout_secs = 1;
        config.icap.content_types = vec!["text/plain".into(), "image/".into()];
        Arc::new(Icap::new(Arc::new(AppState::new(matcher, &config)), &config).unwrap())
    }))
}

fuzz_target!(|bytes: &[u8]| {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let replies = runtime.block_on(async {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (mut from_server, mut to_server) = tokio::io::split(client);
        let (_stop, stopped) = watch::channel(false);
        let serving = tokio::spawn(serve_connection(Connection::new(server), icap(), "fuzz".into(), stopped));
        let input = bytes.to_vec();
        let writing = tokio::spawn(async move {
            // The server may close first: a write error is expected then.
            let _ = to_server.write_all(&input).await;
            let _ = to_server.shutdown().await;
        });
        let mut replies = Vec::new();
        let read = from_server.read_to_end(&mut replies);
        tokio::time::timeout(Duration::from_secs(10), read).await.expect("the connection ends").unwrap();
        serving.await.unwrap();
        writing.await.unwrap();
        replies
    });
    // A response per request, and a request takes a head of at least 20 bytes; an echo sends
    // back at most what came in, with chunk framing.
    assert!(replies.len() <= 2 * bytes.len() + 1024 * (bytes.len() / 20 + 1), "{} bytes of replies", replies.len());
    if !replies.is_empty() {
        assert!(replies.starts_with(b"ICAP/1.0 "), "{:?}", String::from_utf8_lossy(&replies[..replies.len().min(200)]));
    }
});
