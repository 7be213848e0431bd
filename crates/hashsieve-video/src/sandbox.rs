//! Running `ffprobe` and `ffmpeg` on untrusted bytes: the video in a sealed memfd as the
//! child's standard input, resource limits set in the child before `exec`, a wall-clock
//! deadline after which it is killed, killed and reaped on drop, stderr kept to a bounded size.
//!
//! The memfd lives in RAM (it is never a file on any file system); ffmpeg opens it again as
//! `file:/dev/stdin` (a fresh, seekable open file description of the same memory), so
//! containers with their index at the end (MP4 with `moov` last) are demuxed exactly as from a
//! file. Sealed against writes and resizing, it is the same bytes for `ffprobe` and `ffmpeg`.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::process::{Resource, Rlimit};

use crate::VideoError;

/// Bytes of a child's stderr kept: the first [`STDERR_HEAD`] and the last [`STDERR_TAIL`].
const STDERR_HEAD: usize = 4 << 10;
const STDERR_TAIL: usize = 64 << 10;
/// Files a child may hold open: its standard streams, the memfd opened again, the dynamic
/// loader's and a few of ffmpeg's own.
const MAX_OPEN_FILES: u64 = 64;

/// The video's bytes in a sealed memfd.
pub(crate) struct SealedInput {
    fd: OwnedFd,
}

impl SealedInput {
    pub(crate) fn new(bytes: &[u8]) -> Result<SealedInput, VideoError> {
        let fd = rustix::fs::memfd_create("hashsieve-video", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
            .map_err(|e| VideoError::Io { what: "memfd_create", source: e.into() })?;
        let mut file = File::from(fd);
        file.write_all(bytes).map_err(|source| VideoError::Io { what: "writing the memfd", source })?;
        let fd = OwnedFd::from(file);
        rustix::fs::fcntl_add_seals(
            &fd,
            SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL,
        )
        .map_err(|e| VideoError::Io { what: "sealing the memfd", source: e.into() })?;
        Ok(SealedInput { fd })
    }

    /// A descriptor of the memfd for one child's standard input (close-on-exec here; the
    /// child's stdin is a `dup2` of it).
    fn for_child(&self) -> Result<Stdio, VideoError> {
        let fd = self.fd.try_clone().map_err(|source| VideoError::Io { what: "dup of the memfd", source })?;
        rustix::fs::seek(&fd, rustix::fs::SeekFrom::Start(0))
            .map_err(|e| VideoError::Io { what: "seek of the memfd", source: e.into() })?;
        Ok(Stdio::from(fd))
    }
}

/// Limits applied to each child process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcessLimits {
    /// `RLIMIT_AS`: the child's address space.
    pub memory_bytes: u64,
    /// `RLIMIT_CPU`: seconds of CPU time (all threads together); SIGXCPU, then SIGKILL 5 s on.
    pub cpu_seconds: u64,
}

/// A running child: killed (SIGKILL) and reaped when dropped.
struct Job {
    child: Child,
    reaped: Option<ExitStatus>,
}

impl Job {
    fn kill(&mut self) {
        if self.reaped.is_none() {
            let _ = self.child.kill();
        }
    }

    /// Waits for the child to exit, up to `deadline`; kills it then.
    fn wait_until(&mut self, deadline: Instant) -> Result<(ExitStatus, bool), VideoError> {
        let mut killed = false;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.reaped = Some(status);
                    return Ok((status, killed));
                }
                Ok(None) if !killed && Instant::now() >= deadline => {
                    self.kill();
                    killed = true;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(source) => return Err(VideoError::Io { what: "waiting for ffmpeg", source }),
            }
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if self.reaped.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// How a child ended, with what `work` made of its standard output.
pub(crate) struct Finished<T> {
    pub output: T,
    pub status: ExitStatus,
    /// The child's stderr, bounded (head and tail).
    pub stderr: String,
}

/// What `work` may ask of the runner: stop the child early (a limit was reached).
pub(crate) enum Work<T> {
    /// Read to the end; wait for the child's exit.
    Done(T),
    /// Stop now: the child is killed and this error returned.
    Stop(VideoError),
}

/// Runs `program args…` with the video as stdin, hands its stdout to `work` on a thread of its
/// own, and waits for both, killing the child at `deadline`.
pub(crate) fn run<T: Send>(
    program: &Path,
    args: &[OsString],
    input: &SealedInput,
    limits: ProcessLimits,
    deadline: Instant,
    work: impl FnOnce(ChildStdout) -> Work<T> + Send,
) -> Result<Finished<T>, VideoError> {
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .env("LC_ALL", "C")
        .current_dir("/")
        .stdin(input.for_child()?)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let rlimits = [
        (Resource::As, limits.memory_bytes, limits.memory_bytes),
        (Resource::Cpu, limits.cpu_seconds, limits.cpu_seconds.saturating_add(5)),
        (Resource::Core, 0, 0),
        // No file may be written: the only output is the stdout pipe, which this does not limit.
        (Resource::Fsize, 0, 0),
        (Resource::Nofile, MAX_OPEN_FILES, MAX_OPEN_FILES),
    ];
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe operations are allowed. It makes system calls only (setrlimit, prctl
    // through rustix, which neither allocates nor takes locks), over an array captured by value.
    unsafe {
        command.pre_exec(move || {
            for (resource, current, maximum) in rlimits {
                rustix::process::setrlimit(
                    resource,
                    Rlimit { current: Some(current), maximum: Some(maximum) },
                )?;
            }
            // Killed with us: a crashed or killed caller leaves no decoder running.
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
            rustix::thread::set_no_new_privs(true)?;
            Ok(())
        });
    }
    let child = command.spawn().map_err(|source| match source.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied => {
            VideoError::FfmpegMissing { program: program.display().to_string(), source }
        }
        _ => VideoError::Io { what: "starting ffmpeg", source },
    })?;
    let mut job = Job { child, reaped: None };
    let stdout = job.child.stdout.take().expect("stdout is piped");
    let stderr = job.child.stderr.take().expect("stderr is piped");

    std::thread::scope(|scope| {
        let (done_tx, done_rx) = mpsc::channel();
        let worker = scope.spawn(move || {
            let result = work(stdout);
            let _ = done_tx.send(());
            result
        });
        let errors = scope.spawn(move || capture(stderr));
        let remaining = deadline.saturating_duration_since(Instant::now());
        let timed_out = matches!(done_rx.recv_timeout(remaining), Err(mpsc::RecvTimeoutError::Timeout));
        if timed_out {
            // Its stdout closes, so the worker ends too.
            job.kill();
        }
        let result = worker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let stop = match result {
            Work::Done(output) => Ok(output),
            Work::Stop(error) => {
                job.kill();
                Err(error)
            }
        };
        let waited = job.wait_until(deadline);
        let stderr = errors.join().unwrap_or_default();
        if timed_out {
            return Err(VideoError::DeadlineExceeded { stderr });
        }
        let output = stop?;
        let (status, killed) = waited?;
        if killed {
            return Err(VideoError::DeadlineExceeded { stderr });
        }
        Ok(Finished { output, status, stderr })
    })
}

/// Reads a child's stderr to its end, keeping the first and the last bytes.
fn capture(mut stderr: impl Read) -> String {
    let mut head = Vec::new();
    let mut tail: Vec<u8> = Vec::new();
    let mut skipped = false;
    let mut buf = [0u8; 8192];
    loop {
        let n = match stderr.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut chunk = &buf[..n];
        if head.len() < STDERR_HEAD {
            let take = chunk.len().min(STDERR_HEAD - head.len());
            head.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
        }
        tail.extend_from_slice(chunk);
        if tail.len() > 2 * STDERR_TAIL {
            tail.drain(..tail.len() - STDERR_TAIL);
            skipped = true;
        }
    }
    if tail.len() > STDERR_TAIL {
        tail.drain(..tail.len() - STDERR_TAIL);
        skipped = true;
    }
    let mut text = String::from_utf8_lossy(&head).into_owned();
    if skipped {
        text.push_str("\n[…]\n");
    }
    text.push_str(&String::from_utf8_lossy(&tail));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_capture_keeps_the_head_and_the_tail() {
        let text: Vec<u8> = (0..400_000u32).flat_map(|i| format!("{i}\n").into_bytes()).collect();
        let kept = capture(&text[..]);
        assert!(kept.len() < STDERR_HEAD + STDERR_TAIL + 16);
        assert!(kept.starts_with("0\n1\n2\n"));
        assert!(kept.ends_with("399998\n399999\n"));
        assert!(kept.contains("[…]"));
        assert_eq!(capture(&b"short"[..]), "short");
    }
}
