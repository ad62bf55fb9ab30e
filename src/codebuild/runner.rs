//! Runs a buildspec on this machine with `bash`, phase after phase, in the build's work dir.
//!
//! Every phase is one `bash` process in a process group of its own (so that a stop or a timeout
//! ends everything it started); the environment and the working directory a phase leaves are
//! carried into the next, as in CodeBuild's one shell. Output goes to the build's log file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::buildspec::{Buildspec, PHASES};

/// What a build runs with.
pub struct Run {
    /// The directory the build starts in (`CODEBUILD_SRC_DIR`).
    pub src_dir: PathBuf,
    /// Where the build keeps its shell state between phases.
    pub state_dir: PathBuf,
    /// The log file (appended to).
    pub log: PathBuf,
    /// How much output the log keeps.
    pub log_max_bytes: u64,
    /// Environment variables, in order (later ones win).
    pub env: Vec<(String, String)>,
    /// The buildspec.
    pub spec: Buildspec,
    /// When the build times out.
    pub deadline: Instant,
}

/// How a build ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every phase succeeded.
    Succeeded,
    /// A phase failed.
    Failed,
    /// StopBuild.
    Stopped,
    /// `timeoutInMinutes` passed.
    TimedOut,
}

impl Outcome {
    /// The `StatusType` of the wire.
    pub fn status(self) -> &'static str {
        match self {
            Outcome::Succeeded => "SUCCEEDED",
            Outcome::Failed => "FAILED",
            Outcome::Stopped => "STOPPED",
            Outcome::TimedOut => "TIMED_OUT",
        }
    }
}

/// How one phase ended: its status and, when it failed, why.
pub type PhaseResult = (&'static str, Option<String>);

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The script of one phase: restore the previous phase's shell state, run the commands until one
/// fails, then `finally`, and save the state again.
fn script(state_dir: &Path, commands: &[String], finally: &[String]) -> String {
    let env_file = quote(&state_dir.join("env").to_string_lossy());
    let cwd_file = quote(&state_dir.join("cwd").to_string_lossy());
    let mut s = format!(
        "if [ -f {env_file} ]; then . {env_file}; fi\nif [ -f {cwd_file} ]; then cd \"$(cat {cwd_file})\"; fi\n__cb_failed=0\n"
    );
    let run = |s: &mut String, c: &str, guarded: bool| {
        let shown = quote(&format!("[Container] Running command {c}"));
        let open = if guarded {
            "if [ $__cb_failed -eq 0 ]; then "
        } else {
            ""
        };
        let close = if guarded { "fi\n" } else { "" };
        s.push_str(&format!(
            "{open}echo {shown}\n{c}\n__cb_rc=$?\nif [ $__cb_rc -ne 0 ]; then echo \"[Container] Command did not exit successfully {} exit status $__cb_rc\"; __cb_failed=$__cb_rc; fi\n{close}",
            c.replace('"', "'")
        ));
    };
    for c in commands {
        run(&mut s, c, true);
    }
    for c in finally {
        run(&mut s, c, false);
    }
    s.push_str(&format!(
        "export -p > {env_file}\npwd > {cwd_file}\nexit $__cb_failed\n"
    ));
    s
}

/// Kills a process group (a build phase's `bash` and everything it started).
pub fn kill_group(pgid: u32) {
    // Never group 0 (our own) or 1: only a build phase's own group.
    let Ok(pgid) = i32::try_from(pgid) else {
        return;
    };
    if pgid > 1 && pgid != std::process::id() as i32 {
        // SAFETY: killpg only sends a signal; a group that is gone answers ESRCH.
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
    }
}

/// Runs one phase; `None` when it was stopped or timed out (the group is killed).
fn phase(
    run: &Run,
    commands: &[String],
    finally: &[String],
    stop: &AtomicBool,
) -> Result<i32, Outcome> {
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(script(&run.state_dir, commands, finally))
        .current_dir(&run.src_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in &run.env {
        cmd.env(k, v);
    }
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().map_err(|_| Outcome::Failed)?;
    let pgid = child.id();
    // Output and errors go to the log, as long as it has room.
    let copiers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|e| Box::new(e) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|from| {
        let (log, max) = (run.log.clone(), run.log_max_bytes);
        std::thread::spawn(move || copy_bounded(from, &log, max))
    })
    .collect();
    // Should the server die, its next start ends what this phase left running.
    let _ = std::fs::write(run.state_dir.join("pgid"), pgid.to_string());
    loop {
        if let Some(status) = child.try_wait().map_err(|_| Outcome::Failed)? {
            // What the phase left running in the background ends with it.
            kill_group(pgid);
            copiers.into_iter().for_each(|c| {
                let _ = c.join();
            });
            return Ok(status.code().unwrap_or(1));
        }
        let ended = if stop.load(Ordering::Relaxed) {
            Some(Outcome::Stopped)
        } else if Instant::now() >= run.deadline {
            Some(Outcome::TimedOut)
        } else {
            None
        };
        if let Some(outcome) = ended {
            kill_group(pgid);
            let _ = child.wait();
            copiers.into_iter().for_each(|c| {
                let _ = c.join();
            });
            return Err(outcome);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Appends what `from` gives to the log while the log is under `max` bytes; the rest is read
/// and dropped (the log says so once).
fn copy_bounded(mut from: impl std::io::Read, log: &Path, max: u64) {
    let mut buf = [0u8; 8192];
    let mut noted = false;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        else {
            continue;
        };
        let size = f.metadata().map_or(0, |m| m.len());
        if size < max {
            let room = (max - size).min(n as u64) as usize;
            let _ = f.write_all(&buf[..room]);
        } else if !noted {
            noted = true;
            let _ = writeln!(f, "\n[Container] The build's output went over {max} bytes (build_log_max_bytes): the rest is not kept");
        }
    }
}

fn log_line(run: &Run, line: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&run.log)
    {
        let _ = writeln!(
            f,
            "[Container] {} {line}",
            chrono::Utc::now().format("%Y/%m/%d %H:%M:%S")
        );
    }
}

/// Runs the build's phases; `report` is told each phase's end as it happens.
pub fn run(
    run: &Run,
    stop: &AtomicBool,
    mut report: impl FnMut(&'static str, PhaseResult),
) -> Outcome {
    let _ = std::fs::create_dir_all(&run.state_dir);
    let mut failed = false;
    let mut skip_to_post = false;
    for (_, phase_type) in PHASES {
        let declared = run.spec.phases.iter().find(|p| p.phase_type == phase_type);
        // After a failure in INSTALL or PRE_BUILD nothing else runs; after one in BUILD,
        // POST_BUILD still does, as on CodeBuild.
        if skip_to_post || (failed && phase_type != "POST_BUILD") {
            continue;
        }
        let Some(p) = declared else {
            report(phase_type, ("SUCCEEDED", None));
            continue;
        };
        log_line(run, &format!("Entering phase {phase_type}"));
        match phase(run, &p.commands, &p.finally, stop) {
            Ok(0) => report(phase_type, ("SUCCEEDED", None)),
            Ok(code) => {
                let message = format!("Error while executing command: exit status {code}");
                log_line(run, &format!("Phase complete: {phase_type} State: FAILED"));
                report(phase_type, ("FAILED", Some(message)));
                if p.on_failure != "CONTINUE" {
                    failed = true;
                    skip_to_post = phase_type != "BUILD";
                }
            }
            Err(outcome) => {
                let status = if outcome == Outcome::TimedOut {
                    "TIMED_OUT"
                } else {
                    "STOPPED"
                };
                log_line(
                    run,
                    &format!("Phase complete: {phase_type} State: {status}"),
                );
                report(
                    phase_type,
                    (status, Some(format!("Build {}", status.to_lowercase()))),
                );
                return outcome;
            }
        }
    }
    if failed {
        Outcome::Failed
    } else {
        Outcome::Succeeded
    }
}

/// The values of `names` in the shell state the last phase left.
pub fn exported(run: &Run, names: &[String]) -> Vec<(String, String)> {
    if names.is_empty() {
        return Vec::new();
    }
    let env_file = quote(&run.state_dir.join("env").to_string_lossy());
    let list: Vec<String> = names.iter().map(|n| quote(n)).collect();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "if [ -f {env_file} ]; then . {env_file}; fi; for v in {}; do printf '%s\\0%s\\0' \"$v\" \"${{!v}}\"; done",
            list.join(" ")
        ))
        .output();
    let Ok(out) = out else {
        return Vec::new();
    };
    let parts: Vec<String> = out
        .stdout
        .split(|b| *b == 0)
        .map(|p| String::from_utf8_lossy(p).to_string())
        .collect();
    parts
        .chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect()
}
