//! Child processes that log to files and never outlive their test.

use std::fs::File;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::wait::wait_for;

/// How many trailing lines of each log are printed when a test fails.
const LOG_TAIL_LINES: usize = 120;

/// A running child process, in its own process group, with stdout/stderr captured to files.
///
/// On drop it is stopped: SIGTERM to the child first (so a Shoal or libtorrent peer can send
/// `stopped` to its tracker), then, after the grace period, SIGKILL to the whole process group
/// (which also takes helpers it started, such as transmission's finish script). If the test is
/// failing (the thread is panicking), the tails of both logs are printed.
pub struct Proc {
    name: String,
    child: Child,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    grace: Duration,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Starts `cmd` as `name`, logging to `<log_dir>/<name>.stdout` and `.stderr`.
    ///
    /// `grace` is how long a drop waits after SIGTERM before killing the group.
    /// If logs of that name exist already (a command run twice), a `-2`, `-3`... suffix is added.
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path, grace: Duration) -> Proc {
        let name = unique_log_name(log_dir, name);
        let name = name.as_str();
        let stdout_path = log_dir.join(format!("{name}.stdout"));
        let stderr_path = log_dir.join(format!("{name}.stderr"));
        let stdout = File::create(&stdout_path).expect("cannot create stdout log");
        let stderr = File::create(&stderr_path).expect("cannot create stderr log");
        cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr).process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc { name: name.to_string(), child, stdout_path, stderr_path, grace, status: None }
    }

    /// The name given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the child wrote to stdout so far.
    pub fn stdout(&self) -> String {
        read_lossy(&self.stdout_path)
    }

    /// Everything the child wrote to stderr so far.
    pub fn stderr(&self) -> String {
        read_lossy(&self.stderr_path)
    }

    /// The exit status if the child has exited (reaps it).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait on own child");
        }
        self.status
    }

    /// Waits for the child to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        let what = format!("{} to exit", self.name);
        wait_for(&what, timeout, || self.try_status())
    }

    /// Waits for the child to exit with status 0; panics with its logs otherwise.
    pub fn expect_success(&mut self, timeout: Duration) {
        match self.wait_exit(timeout) {
            Ok(status) if status.success() => {}
            Ok(status) => panic!("{} failed with {status}\n{}", self.name, self.logs()),
            Err(e) => panic!("{e}\n{}", self.logs()),
        }
    }

    /// Waits until `pred` holds for the stdout text; panics (with logs) on timeout or if the
    /// child exits first.
    pub fn wait_stdout(&mut self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) {
        self.wait_log(what, timeout, true, pred)
    }

    /// Waits until `pred` holds for the stderr text; panics (with logs) on timeout or if the
    /// child exits first.
    pub fn wait_stderr(&mut self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) {
        self.wait_log(what, timeout, false, pred)
    }

    /// Like [`Proc::wait_stdout`], but returns the child's exit status instead of panicking
    /// when it exits first (a timeout still panics).
    pub fn wait_stdout_or_exit(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<(), ExitStatus> {
        self.wait_text_or_exit(what, timeout, true, pred)
    }

    fn wait_log(&mut self, what: &str, timeout: Duration, stdout: bool, pred: impl Fn(&str) -> bool) {
        if let Err(status) = self.wait_text_or_exit(what, timeout, stdout, pred) {
            panic!("{} exited with {status} before it did {what}\n{}", self.name, self.logs());
        }
    }

    /// Waits until `pred` holds for stdout (or stderr); `Err` with the exit status if the child
    /// exits first, a panic (with logs) on timeout.
    fn wait_text_or_exit(
        &mut self,
        what: &str,
        timeout: Duration,
        stdout: bool,
        pred: impl Fn(&str) -> bool,
    ) -> Result<(), ExitStatus> {
        let desc = format!("{} to {what}", self.name);
        let text = |p: &Proc| if stdout { p.stdout() } else { p.stderr() };
        let res = wait_for(&desc, timeout, || {
            if pred(&text(self)) {
                return Some(Ok(()));
            }
            let status = self.try_status()?;
            // Read once more after exit: the line may have been written just before exiting.
            Some(if pred(&text(self)) { Ok(()) } else { Err(status) })
        });
        res.unwrap_or_else(|e| panic!("{e}\n{}", self.logs()))
    }

    /// Sends `signal` to the child (not its group).
    pub fn signal(&self, signal: i32) {
        if self.status.is_none() {
            // SAFETY: kill(2) on our own child's pid; no memory is touched.
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, signal);
            }
        }
    }

    /// Asks the child to stop with SIGTERM and waits up to `timeout` for it; then kills the
    /// process group. Returns the exit status, or `None` if it had to be killed.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(s) = self.try_status() {
            self.kill_group();
            return Some(s);
        }
        self.signal(libc::SIGTERM);
        let res = self.wait_exit(timeout).ok();
        self.kill_group();
        if res.is_none() {
            self.status = Some(self.child.wait().expect("wait on own child"));
        }
        res
    }

    /// Stops the child with SIGTERM and asserts that it exits with status 0 in `timeout`.
    pub fn terminate_expect_success(&mut self, timeout: Duration) {
        match self.terminate(timeout) {
            Some(s) if s.success() => {}
            Some(s) => panic!("{} exited with {s} after SIGTERM (expected 0)\n{}", self.name, self.logs()),
            None => panic!("{} did not exit within {timeout:?} of SIGTERM\n{}", self.name, self.logs()),
        }
    }

    fn kill_group(&self) {
        // SAFETY: kill(2) on the process group we created for our own child; harmless if the
        // group is already gone.
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
    }

    /// The tails of both logs, formatted for a failure message.
    pub fn logs(&self) -> String {
        format!(
            "----- {name} stdout ({o}) -----\n{}\n----- {name} stderr ({e}) -----\n{}\n----- end of {name} -----",
            tail(&self.stdout(), LOG_TAIL_LINES),
            tail(&self.stderr(), LOG_TAIL_LINES),
            name = self.name,
            o = self.stdout_path.display(),
            e = self.stderr_path.display(),
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.try_status().is_none() {
            let grace = self.grace;
            self.terminate(grace);
        } else {
            self.kill_group();
        }
        if std::thread::panicking() {
            let how = match self.status {
                Some(s) if s.signal().is_some() => format!("killed by signal {:?}", s.signal()),
                Some(s) => format!("exited with {s}"),
                None => "still running".to_string(),
            };
            eprintln!("[{}: {how}]\n{}", self.name, self.logs());
        }
    }
}

/// The output of a command run to completion.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// What it wrote to stdout.
    pub stdout: String,
    /// What it wrote to stderr.
    pub stderr: String,
}

/// Runs `cmd` to completion (at most `timeout`, else panics with its logs).
pub fn run(name: &str, cmd: Command, log_dir: &Path, timeout: Duration) -> Finished {
    let mut p = Proc::spawn(name, cmd, log_dir, Duration::ZERO);
    match p.wait_exit(timeout) {
        Ok(status) => Finished { status, stdout: p.stdout(), stderr: p.stderr() },
        Err(e) => panic!("{e}\n{}", p.logs()),
    }
}

/// Runs `cmd` to completion and panics (with its logs) unless it exits 0; returns its stdout.
pub fn run_ok(name: &str, cmd: Command, log_dir: &Path, timeout: Duration) -> String {
    let mut p = Proc::spawn(name, cmd, log_dir, Duration::ZERO);
    p.expect_success(timeout);
    p.stdout()
}

fn unique_log_name(log_dir: &Path, name: &str) -> String {
    let taken = |n: &str| log_dir.join(format!("{n}.stdout")).exists();
    if !taken(name) {
        return name.to_string();
    }
    (2..).map(|i| format!("{name}-{i}")).find(|n| !taken(n)).expect("an unused suffix exists")
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let mut out = String::new();
    if start > 0 {
        out.push_str(&format!("[... {start} earlier lines ...]\n"));
    }
    out.push_str(&all[start..].join("\n"));
    out
}
