//! The `codepipeline-local` command: `serve` (the default) runs the emulator.

use std::io::Write;
use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};
use codepipeline_local::cli as history;
use codepipeline_local::config::{Config, Overrides};

/// mimalloc: measurably faster than the system allocator on the JSON-heavy request path (see
/// docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The allocator's tuning for the load (see `codepipeline_local::allocator`). The arena option is
/// read when the first arena is made, before `main`, so this runs as a static constructor, before
/// the Rust runtime's first allocation.
#[used]
#[cfg_attr(target_os = "linux", link_section = ".init_array")]
#[cfg_attr(target_os = "macos", link_section = "__DATA,__mod_init_func")]
static TUNE_ALLOCATOR: extern "C" fn() = tune_allocator;

extern "C" fn tune_allocator() {
    codepipeline_local::allocator::at_load();
}

#[derive(Parser)]
#[command(
    name = "codepipeline-local",
    version,
    about = "A local emulator of AWS CodePipeline"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the AWS endpoint (the default when no command is given).
    Serve(ServeArgs),
    /// Look back at pipelines, executions and action executions.
    History {
        #[command(subcommand)]
        what: history::HistoryCommand,
        #[command(flatten)]
        common: history::Common,
    },
    /// An execution's events as a timeline, or (--at) its state after one of them.
    Replay {
        /// Execution id.
        execution: String,
        /// An event number (from the timeline) or a time (RFC 3339).
        #[arg(long)]
        at: Option<String>,
        #[command(flatten)]
        common: history::Common,
    },
    /// Start an execution again on the same source revisions and variables.
    Rerun {
        /// Execution id.
        execution: String,
        #[command(flatten)]
        common: history::Common,
    },
    /// What differed between two executions: revisions, resolved configuration, outcomes.
    Diff {
        /// First execution id.
        a: String,
        /// Second execution id.
        b: String,
        #[command(flatten)]
        common: history::Common,
    },
    /// A CodeBuild build's output (with --follow, until the build ends), or a Lambda function's
    /// latest invocation logs (by function name) or one invocation's (by request id).
    Logs {
        /// Build id (`project:uuid`), Lambda function name, or Lambda request id.
        build: String,
        /// Keep printing the output as the build runs, until it ends.
        #[arg(long, short)]
        follow: bool,
        #[command(flatten)]
        common: history::Common,
    },
    /// Open, close and list pull requests on the repositories under the server's
    /// git_repos_dir: they start pipelines whose triggers have pull-request filters.
    PullRequest {
        #[command(subcommand)]
        what: history::pull_requests::PullRequestCommand,
        #[command(flatten)]
        common: history::Common,
    },
    /// An execution's events as JSON lines (the first line: its pipeline declaration).
    Export {
        /// Execution id.
        execution: String,
        #[command(flatten)]
        common: history::Common,
    },
    /// Wait for an execution to end. Exit code: 0 Succeeded, 2 Failed, 3 Stopped,
    /// 4 Superseded, 5 Cancelled, 124 when --timeout ran out, 1 on an error.
    Wait {
        /// Execution id.
        execution: String,
        /// Give up after this many seconds.
        #[arg(long)]
        timeout: Option<u64>,
        #[command(flatten)]
        common: history::Common,
    },
    /// Follow a pipeline's stages and actions: redrawn in place on a terminal, a line for each
    /// change when piped.
    Watch {
        /// Pipeline name.
        pipeline: String,
        /// End when the newest execution ends, with `wait`'s exit code.
        #[arg(long)]
        until_finished: bool,
        #[command(flatten)]
        common: history::Common,
    },
    /// Approve the approval waiting at a pipeline's stage and action.
    Approve(Review),
    /// Reject the approval waiting at a pipeline's stage and action.
    Reject(Review),
    /// Retry a pipeline's failed stage (its failed actions; all of them with --all).
    Retry {
        /// Pipeline name.
        pipeline: String,
        /// Stage name.
        stage: String,
        /// Run every action of the stage again, not only the failed ones.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        common: history::Common,
    },
    /// Print a completion script for a shell (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `approve` / `reject`.
#[derive(clap::Args)]
struct Review {
    /// Pipeline name.
    pipeline: String,
    /// Stage name.
    stage: String,
    /// Action name.
    action: String,
    /// The comment recorded with the result.
    #[arg(long)]
    summary: Option<String>,
    #[command(flatten)]
    common: history::Common,
}

#[derive(clap::Args, Clone, Default)]
struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1].
    #[arg(long)]
    host: Option<String>,
    /// Port to listen on; 0 picks a free one [default: 4566].
    #[arg(long)]
    port: Option<u16>,
    /// Directory for the data [default: ./data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A TOML file with settings (see config/default.toml for every key).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where the Git repositories of connection source actions are: FullRepositoryId
    /// owner/name is DIR/owner/name.
    #[arg(long)]
    git_repos_dir: Option<PathBuf>,
}

fn main() {
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,tracing=warn,s3s=warn"),
    )
    .init();
    let cli = Cli::parse();
    let (common, request) = match cli.command {
        Some(Command::Serve(args)) => return serve_or_exit(args),
        None => return serve_or_exit(cli.serve),
        Some(Command::History { what, common }) => (common, history::Request::History(what)),
        Some(Command::Replay {
            execution,
            at,
            common,
        }) => (common, history::Request::Replay { execution, at }),
        Some(Command::Rerun { execution, common }) => {
            (common, history::Request::Rerun { execution })
        }
        Some(Command::Diff { a, b, common }) => (common, history::Request::Diff { a, b }),
        Some(Command::Export { execution, common }) => {
            (common, history::Request::Export { execution })
        }
        Some(Command::PullRequest { what, common }) => {
            match history::pull_requests::run(&common, &what) {
                Ok(out) => print!("{out}"),
                Err(e) => {
                    eprintln!("codepipeline-local: {e}");
                    std::process::exit(1);
                }
            }
            return;
        }
        Some(Command::Wait {
            execution,
            timeout,
            common,
        }) => match history::steer::wait(&common, &execution, timeout) {
            Ok((line, code)) => {
                print!("{line}");
                let _ = std::io::stdout().flush();
                std::process::exit(code);
            }
            Err(e) => fail(&e),
        },
        Some(Command::Watch {
            pipeline,
            until_finished,
            common,
        }) => {
            let mut stdout = std::io::stdout().lock();
            match history::steer::watch(&common, &pipeline, until_finished, &mut stdout) {
                Ok(code) => std::process::exit(code),
                Err(e) => fail(&e),
            }
        }
        Some(Command::Approve(r)) => finish(review(&r, true)),
        Some(Command::Reject(r)) => finish(review(&r, false)),
        Some(Command::Retry {
            pipeline,
            stage,
            all,
            common,
        }) => finish(history::steer::retry(&common, &pipeline, &stage, all)),
        Some(Command::Completions { shell }) => {
            let mut stdout = std::io::stdout().lock();
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "codepipeline-local",
                &mut stdout,
            );
            return;
        }
        Some(Command::Logs {
            build,
            follow,
            common,
        }) => {
            let mut stdout = std::io::stdout().lock();
            if let Err(e) = history::logs(&common, &build, follow, &mut stdout) {
                eprintln!("codepipeline-local: {e}");
                std::process::exit(1);
            }
            return;
        }
    };
    match history::run(&common, &request) {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`| head`) is not an error.
            let _ = stdout.write_all(out.as_bytes());
        }
        Err(e) => {
            eprintln!("codepipeline-local: {e}");
            std::process::exit(1);
        }
    }
}

fn review(r: &Review, approve: bool) -> Result<String, String> {
    history::steer::review(
        &r.common,
        &r.pipeline,
        &r.stage,
        &r.action,
        r.summary.as_deref(),
        approve,
    )
}

/// Prints a command's output, or its error and exits 1.
fn finish(result: Result<String, String>) -> ! {
    match result {
        Ok(out) => {
            print!("{out}");
            let _ = std::io::stdout().flush();
            std::process::exit(0);
        }
        Err(e) => fail(&e),
    }
}

fn fail(e: &str) -> ! {
    eprintln!("codepipeline-local: {e}");
    std::process::exit(1);
}

fn serve_or_exit(args: ServeArgs) {
    if let Err(e) = serve(args) {
        eprintln!("codepipeline-local: {e}");
        std::process::exit(1);
    }
}

fn serve(args: ServeArgs) -> Result<(), String> {
    let overrides = Overrides {
        host: args.host,
        port: args.port,
        data_dir: args.data_dir,
        git_repos_dir: args.git_repos_dir,
    };
    let config = Config::load(args.config.as_deref(), std::env::vars(), &overrides)?;
    let listener = std::net::TcpListener::bind((config.host.as_str(), config.port))
        .map_err(|e| format!("cannot listen on {}:{}: {e}", config.host, config.port))?;
    actix_web::rt::System::new().block_on(codepipeline_local::server::run(
        config,
        listener,
        |addr| {
            println!("codepipeline-local listening on http://{addr}");
            println!("codepipeline-local console at http://{addr}/_console/");
            let _ = std::io::stdout().flush();
        },
        shutdown_signal(),
    ))
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
