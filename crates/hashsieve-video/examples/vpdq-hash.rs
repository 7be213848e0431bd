//! Hashes videos with vPDQ and prints `file,frame_number,timestamp_s,quality,pdq_hex` lines
//! (the reference vectors' CSV columns; the timestamp as the shortest text that reads back
//! as the same double, which on a tie may end in another digit than Python's `repr`), then one `# file seconds` line per video on
//! stderr. `--repeats N` hashes each video N times and reports the median time.
//!
//!     cargo run --release -p hashsieve-video --example vpdq-hash -- [--repeats N] [--spf S] FILE...

use std::time::Instant;

use hashsieve_video::{VideoOptions, hash_video_with};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).peekable();
    let (mut repeats, mut options) = (1usize, VideoOptions::default());
    let mut files = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--repeats" => repeats = args.next().ok_or("--repeats N")?.parse()?,
            "--spf" => options.seconds_per_hash = args.next().ok_or("--spf S")?.parse()?,
            _ => files.push(arg),
        }
    }
    for file in files {
        let bytes = std::fs::read(&file)?;
        let name = std::path::Path::new(&file).file_name().unwrap().to_string_lossy().into_owned();
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..repeats.max(1) {
            let started = Instant::now();
            last = Some(hash_video_with(&bytes, &options));
            times.push(started.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        match last.unwrap() {
            Ok(hash) => {
                for f in &hash.features {
                    let ts = if f.timestamp.fract() == 0.0 {
                        format!("{:.1}", f.timestamp)
                    } else {
                        format!("{}", f.timestamp)
                    };
                    println!("{name},{},{ts},{},{}", f.frame_number, f.quality, f.pdq);
                }
            }
            Err(e) => eprintln!("{name}: {e}"),
        }
        eprintln!("# {name} {:.4}", times[times.len() / 2]);
    }
    Ok(())
}
