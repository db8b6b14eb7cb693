//! Background processes of the tracer benchmark (`listns --follow`, bpftrace):
//! threads that read their output line by line with arrival times, and a
//! guard that stops and reaps them on every way out.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ExitStatus};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rustix::process::{Pid, Signal, kill_process};

/// Lines of a pipe kept for error messages.
const TAIL_LINES: usize = 20;
/// Time a process gets to exit after SIGTERM before it gets SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// One line of output and when this process read it.
pub struct Line {
    pub at: Instant,
    pub text: String,
}

/// A thread that reads a pipe to its end, so that the writer does not stall
/// on a full pipe. It passes each line to [`LineReader::next_line`] until
/// [`LineReader::discard`], and keeps the last lines for error messages.
pub struct LineReader {
    lines: Option<Receiver<Line>>,
    tail: Arc<Mutex<VecDeque<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl LineReader {
    pub fn spawn(pipe: impl Read + Send + 'static, name: &str) -> Result<LineReader> {
        let (sender, receiver) = mpsc::channel();
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let thread_tail = Arc::clone(&tail);
        let thread = thread::Builder::new()
            .name(format!("read {name}"))
            .spawn(move || read_lines(pipe, &sender, &thread_tail))
            .with_context(|| format!("failed to start a thread that reads the output of {name}"))?;
        Ok(LineReader {
            lines: Some(receiver),
            tail,
            thread: Some(thread),
        })
    }

    /// Waits up to `timeout` for the next line. Returns `Ok(None)` on timeout
    /// and an error once the pipe has closed and every line was taken.
    pub fn next_line(&self, timeout: Duration) -> Result<Option<Line>> {
        let Some(lines) = &self.lines else {
            bail!("the lines of this pipe were discarded");
        };
        match lines.recv_timeout(timeout) {
            Ok(line) => Ok(Some(line)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => bail!("the pipe closed"),
        }
    }

    /// Stops forwarding lines: the thread still reads the pipe to its end.
    pub fn discard(&mut self) {
        self.lines = None;
    }

    /// Returns the last lines read, joined with "; ", for error messages.
    pub fn tail(&self) -> String {
        let tail = self.tail.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        tail.iter().map(String::as_str).collect::<Vec<_>>().join("; ")
    }

    fn join(&mut self) {
        self.lines = None;
        if let Some(thread) = self.thread.take() {
            // The thread only reads and sends; a panic there loses output, nothing else.
            let _ = thread.join();
        }
    }
}

fn read_lines(pipe: impl Read, sender: &mpsc::Sender<Line>, tail: &Mutex<VecDeque<String>>) {
    let mut reader = BufReader::with_capacity(1 << 16, pipe);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let at = Instant::now();
        let text = String::from_utf8_lossy(&buffer).trim_end_matches('\n').to_owned();
        {
            let mut tail = tail.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            // The snapshot of `listns --json` is one line of megabytes; keep its start only.
            tail.push_back(text.chars().take(300).collect());
        }
        // The receiver is gone once its owner has seen enough; keep draining the pipe.
        let _ = sender.send(Line { at, text });
    }
}

/// A child process that is stopped with SIGTERM (then SIGKILL) and reaped
/// when it drops, together with the threads that read its pipes.
pub struct Background {
    pub name: String,
    child: Child,
    pub stdout: Option<LineReader>,
    pub stderr: Option<LineReader>,
    status: Option<ExitStatus>,
}

impl Background {
    /// Takes over `child` and starts readers for whichever of its stdout and stderr are piped.
    pub fn new(name: &str, mut child: Child) -> Result<Background> {
        let stdout = child
            .stdout
            .take()
            .map(|pipe| LineReader::spawn(pipe, name))
            .transpose();
        let stderr = child
            .stderr
            .take()
            .map(|pipe| LineReader::spawn(pipe, name))
            .transpose();
        let mut background = Background {
            name: name.to_owned(),
            child,
            stdout: None,
            stderr: None,
            status: None,
        };
        // On an error here, dropping `background` stops and reaps the child.
        background.stdout = stdout?;
        background.stderr = stderr?;
        Ok(background)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Returns the exit status if the process has ended (and reaps it).
    pub fn try_status(&mut self) -> Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .with_context(|| format!("failed to check whether {} (PID {}) is running", self.name, self.pid()))?;
        }
        Ok(self.status)
    }

    /// Returns an error reporting that the process ended early, with its last error output.
    pub fn ended_early(&mut self, waiting_for: &str) -> anyhow::Error {
        // Give the process a moment to end, as its closed pipe may be the first sign.
        let deadline = Instant::now() + Duration::from_secs(2);
        while matches!(self.try_status(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        let status = match self.try_status() {
            Ok(Some(status)) => status.to_string(),
            _ => "still running, but its output closed".to_owned(),
        };
        let stderr = self.stderr.as_ref().map(LineReader::tail).unwrap_or_default();
        anyhow::anyhow!(
            "{} (PID {}) ended while the benchmark waited for {waiting_for} ({status}); its last error output: {stderr:?}",
            self.name,
            self.pid()
        )
    }

    /// Sends SIGTERM, waits up to [`STOP_GRACE`], then sends SIGKILL. Reaps
    /// the process, joins the reader threads and returns the exit status.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        let status = self.terminate_and_reap();
        if let Some(reader) = &mut self.stdout {
            reader.join();
        }
        if let Some(reader) = &mut self.stderr {
            reader.join();
        }
        status
    }

    fn terminate_and_reap(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.try_status()? {
            return Ok(status);
        }
        // The child is not reaped yet, so its PID cannot have been reused.
        let pid = Pid::from_raw(self.pid() as i32).context("a child process has PID 0")?;
        let _ = kill_process(pid, Signal::TERM);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Some(status) = self.try_status()? {
                return Ok(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "xtask bench: {} (PID {}) did not exit within {STOP_GRACE:?} of SIGTERM; sending SIGKILL",
            self.name,
            self.pid()
        );
        let _ = self.child.kill();
        let status = self
            .child
            .wait()
            .with_context(|| format!("failed to reap {} (PID {})", self.name, self.pid()))?;
        self.status = Some(status);
        Ok(status)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Err(err) = self.stop() {
            eprintln!("xtask bench: failed to stop {}: {err:#}", self.name);
        }
    }
}
