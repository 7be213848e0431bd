//! Arbitrary bytes from a clamd client, through the daemon's real connection handling: every
//! connection must end, with replies that are terminated and bounded, and no panic — whatever
//! the commands, chunk lengths or sessions say.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hashsieve_core::hashes::HashKind;
use hashsieve_core::import::ImportedEntry;
use hashsieve_core::index::{IndexBuilder, ListOptions};
use hashsieve_core::matcher::Matcher;
use hashsieve_daemon::clamd::Clamd;
use hashsieve_daemon::clamd::connection::Connection;
use hashsieve_daemon::clamd::handler::serve_connection;
use hashsieve_daemon::config::Config;
use hashsieve_daemon::state::AppState;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, watch};

/// The longest reply: `STATS`, with room to spare.
const MAX_REPLY: usize = 1024;

fn clamd() -> Arc<Clamd> {
    static CLAMD: OnceLock<Arc<Clamd>> = OnceLock::new();
    Arc::clone(CLAMD.get_or_init(|| {
        let mut builder = IndexBuilder::new();
        let hot = builder.add_list(ListOptions::new("hot")).unwrap();
        // The MD5 of "known", so that a stream can match.
        let md5 = hex::decode("c90ae688b2a3b1fd0751fd743eb385cd").unwrap();
        builder.add(hot, &ImportedEntry::new(HashKind::Md5, md5)).unwrap();
        let matcher = Matcher::from_bytes(builder.to_vec()).unwrap();
        let mut config = Config::for_index("/nonexistent".into());
        config.limits.max_body_bytes = 64 << 10;
        config.limits.header_timeout_secs = 1;
        config.limits.request_timeout_secs = 2;
        config.clamd.idle_timeout_secs = 1;
        Arc::new(Clamd::new(Arc::new(AppState::new(matcher, &config)), &config))
    }))
}

fuzz_target!(|bytes: &[u8]| {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let replies = runtime.block_on(async {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (mut from_server, mut to_server) = tokio::io::split(client);
        let (_stop, stopped) = watch::channel(false);
        let serving = tokio::spawn(serve_connection(
            Connection::new(server),
            clamd(),
            "fuzz".into(),
            Arc::new(Semaphore::new(1)),
            stopped,
        ));
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
    // At most one reply per command, and a command takes at least two bytes (name and
    // delimiter) — or one, old style, at the end.
    assert!(replies.len() <= MAX_REPLY * (bytes.len() / 2 + 2), "{} bytes of replies", replies.len());
    if let Some(&last) = replies.last() {
        assert!(last == b'\n' || last == b'\0', "an unterminated reply: {:?}", String::from_utf8_lossy(&replies));
    }
});
