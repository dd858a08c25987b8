//! `skiff run` and `skiff dev`: wire the runner's [`DevLoop`] to the console, the event log and
//! HTTP API, Ctrl-C/SIGTERM and (for `dev`) a filesystem watcher.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use skiff_runner::dev::{DevLoop, DevOptions, PortForwardMode};
use skiff_types::event::{Event, Level, Reporter};
use skiff_watch::{NotifyWatcher, Trigger, WatchOptions};

use crate::args::{Cli, DevArgs, LoopArgs, PortForwardArg, PortForwardModes, RunArgs, TriggerArg};
use crate::console::{ConsoleReporter, RepeatFilter};
use crate::control::{Api, enter_triggers, serve};
use crate::events::EventHub;
use crate::render::{prepare, runtime};
use skiff_runner::events::FanOut;

struct Prepared {
    loop_: DevLoop,
    reporter: Arc<dyn Reporter>,
    /// Set when events go to a log file or the HTTP API.
    hub: Option<Arc<EventHub>>,
    /// `--event-log`, resolved against the working directory.
    event_log: Option<std::path::PathBuf>,
}

/// What `dev` adds to `run`'s options.
struct DevExtras {
    cleanup: bool,
    auto: [bool; 3],
    /// Warm rebuilds: `--warm-builds` of `dev` (`None`: as the config says); `run` passes
    /// `Some(false)`, it always builds clean.
    warm_builds: Option<bool>,
}

fn port_forward_modes(modes: &PortForwardModes) -> Vec<PortForwardMode> {
    modes
        .0
        .iter()
        .map(|mode| match mode {
            PortForwardArg::User => PortForwardMode::User,
            PortForwardArg::Services => PortForwardMode::Services,
            PortForwardArg::Pods => PortForwardMode::Pods,
            PortForwardArg::Off => PortForwardMode::Off,
        })
        .collect()
}

fn prepare_loop(
    cli: &Cli,
    args: &LoopArgs,
    env: BTreeMap<String, String>,
    defaults: (bool, PortForwardArg),
    extras: DevExtras,
) -> anyhow::Result<Prepared> {
    let mut prepared = prepare(cli, &args.source, false, env.clone())?;
    // The flag wins over the config's annotation; `run` never rebuilds warm.
    prepared.options.build.warm_builds = extras
        .warm_builds
        .unwrap_or(prepared.project.build.warm_builds);
    let mut deploy = crate::deploy::run_options(&prepared.context, true);
    deploy.force = args.rollout.force;
    deploy.status_check = args.rollout.status_check;
    let port_forward = port_forward_modes(
        &args
            .port_forward
            .clone()
            .unwrap_or_else(|| PortForwardModes(vec![defaults.1])),
    );
    let reload = cli
        .global
        .load_options(cli.command.name(), env, prepared.cwd.clone());
    let [auto_build, auto_sync, auto_deploy] = extras.auto;
    let options = DevOptions {
        render: prepared.options,
        deploy,
        port_forward,
        tail: args.tail.unwrap_or(defaults.0),
        cleanup: extras.cleanup,
        reload: Some(reload),
        auto_build,
        auto_sync,
        auto_deploy,
        skip_tests: args.skip_tests,
    };
    let console: Arc<dyn Reporter> = Arc::new(RepeatFilter::new(ConsoleReporter::new(false, true)));
    let event_log = args.event_log.as_ref().map(|path| prepared.cwd.join(path));
    let hub = if event_log.is_some() || args.rpc_http_port.is_some() {
        Some(Arc::new(EventHub::new(
            event_log.as_deref(),
            args.rpc_http_port.is_some(),
        )?))
    } else {
        None
    };
    let reporter: Arc<dyn Reporter> = match &hub {
        Some(hub) => Arc::new(FanOut(vec![console, Arc::clone(hub) as Arc<dyn Reporter>])),
        None => console,
    };
    if args.rpc_port.is_some() {
        reporter.report(Event::Message {
            source: "cli",
            level: Level::Warning,
            text: "--rpc-port is ignored: skiff serves no gRPC API; use --rpc-http-port for the HTTP API".into(),
        });
    }
    let loop_ = DevLoop::with_project(prepared.project, options, Arc::clone(&reporter))?;
    Ok(Prepared {
        loop_,
        reporter,
        hub,
        event_log,
    })
}

/// Start the HTTP API when asked for; says where it listens.
async fn start_api(args: &LoopArgs, prepared: &Prepared, dev: bool) -> anyhow::Result<()> {
    let (Some(port), Some(hub)) = (args.rpc_http_port, &prepared.hub) else {
        return Ok(());
    };
    let api = Api {
        hub: Arc::clone(hub),
        control: dev.then(|| prepared.loop_.control()),
    };
    let address = serve(port, api).await?;
    prepared.reporter.report(Event::Message {
        source: "cli",
        level: Level::Info,
        text: format!(
            "Serving the HTTP API on http://{address} (/v2/events, /v2/state, /v2/execute)"
        ),
    });
    Ok(())
}

/// Completes at the first Ctrl-C or SIGTERM (saying `message`); a second one exits at once.
fn ctrl_c(message: &'static str) -> impl std::future::Future<Output = ()> + Send {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        if !interrupted().await {
            // No signal handling: never shut down by signal (the sender stays alive).
            std::future::pending::<()>().await;
        }
        let _ = writeln!(
            std::io::stderr().lock(),
            "{message} (press Ctrl-C again to exit at once)"
        );
        let _ = tx.send(());
        if interrupted().await {
            std::process::exit(130);
        }
    });
    async move {
        let _ = rx.await;
    }
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM; `false` when signals cannot be received.
async fn interrupted() -> bool {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut terminate) = signal(SignalKind::terminate()) else {
            return tokio::signal::ctrl_c().await.is_ok();
        };
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.is_ok(),
            received = terminate.recv() => received.is_some(),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.is_ok()
    }
}

pub fn run(cli: &Cli, args: &RunArgs, env: BTreeMap<String, String>) -> anyhow::Result<()> {
    let prepared = prepare_loop(
        cli,
        &args.common,
        env,
        (false, PortForwardArg::Off),
        DevExtras {
            cleanup: false,
            auto: [true; 3],
            warm_builds: Some(false),
        },
    )?;
    runtime()?.block_on(async move {
        start_api(&args.common, &prepared, false).await?;
        prepared.loop_.run(ctrl_c("Stopping…")).await?;
        anyhow::Ok(())
    })?;
    Ok(())
}

pub fn dev(cli: &Cli, args: &DevArgs, env: BTreeMap<String, String>) -> anyhow::Result<()> {
    let prepared = prepare_loop(
        cli,
        &args.common,
        env,
        (true, PortForwardArg::User),
        DevExtras {
            cleanup: args.cleanup,
            auto: [args.auto_build, args.auto_sync, args.auto_deploy],
            warm_builds: args.warm_builds,
        },
    )?;
    let trigger = match args.trigger {
        TriggerArg::Notify => Trigger::Notify,
        TriggerArg::Polling => Trigger::Polling(Duration::from_millis(args.watch_poll_interval)),
        TriggerArg::Manual => Trigger::Manual,
    };
    runtime()?.block_on(async move {
        start_api(&args.common, &prepared, true).await?;
        let watcher = NotifyWatcher::new(
            WatchOptions {
                roots: prepared.loop_.watch_roots(),
                trigger,
                ignore: ignore_own_files(prepared.loop_.watch_ignore(), prepared.event_log.clone()),
                ..WatchOptions::default()
            },
            Arc::clone(&prepared.reporter),
        )?;
        let manual = trigger == Trigger::Manual || !args.auto_build || !args.auto_deploy;
        if manual {
            enter_triggers(prepared.loop_.control());
            prepared.reporter.report(Event::Message {
                source: "cli",
                level: Level::Info,
                text: "Press Enter to run an iteration with the changes so far".into(),
            });
        }
        let message = if args.cleanup {
            "Cleaning up…"
        } else {
            "Stopping…"
        };
        prepared
            .loop_
            .dev(Box::new(watcher), ctrl_c(message))
            .await?;
        anyhow::Ok(())
    })?;
    Ok(())
}

/// `ignore`, also ignoring the files skiff writes itself during `dev`: the `--event-log` file
/// inside a watched context would otherwise start an iteration, whose events start the next.
fn ignore_own_files(
    mut ignore: skiff_watch::IgnoreRules,
    event_log: Option<std::path::PathBuf>,
) -> skiff_watch::IgnoreRules {
    if let Some(log) = event_log {
        let canonical = match (log.parent(), log.file_name()) {
            (Some(dir), Some(name)) => dir.canonicalize().ok().map(|dir| dir.join(name)),
            _ => None,
        };
        ignore.exclude.push(Arc::new(move |path: &std::path::Path| {
            path == log || canonical.as_deref() == Some(path)
        }));
    }
    ignore
}
