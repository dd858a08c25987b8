//! `skiff run` and `skiff dev`: wire the runner's [`DevLoop`] to the console, Ctrl-C and (for
//! `dev`) a filesystem watcher.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use skiff_runner::dev::{DevLoop, DevOptions, PortForwardMode};
use skiff_types::event::Reporter;
use skiff_watch::{IgnoreRules, NotifyWatcher, Trigger, WatchOptions};

use crate::args::{Cli, DevArgs, LoopArgs, PortForwardArg, RunArgs, TriggerArg};
use crate::console::ConsoleReporter;
use crate::render::{prepare, runtime};

struct Prepared {
    loop_: DevLoop,
    reporter: Arc<dyn Reporter>,
}

fn prepare_loop(
    cli: &Cli,
    args: &LoopArgs,
    env: BTreeMap<String, String>,
    defaults: (bool, PortForwardArg),
    cleanup: bool,
) -> anyhow::Result<Prepared> {
    let prepared = prepare(cli, &args.source, false, env.clone())?;
    let mut deploy = crate::deploy::run_options(
        cli,
        &env,
        &prepared.cwd,
        prepared.options.run_id.clone(),
        prepared.options.kube_context.clone(),
    );
    deploy.force = args.force;
    deploy.status_check = args.status_check;
    let port_forward = match args.port_forward.unwrap_or(defaults.1) {
        PortForwardArg::User => PortForwardMode::User,
        PortForwardArg::Off => PortForwardMode::Off,
    };
    let reload = cli
        .global
        .load_options(cli.command.name(), env, prepared.cwd.clone());
    let options = DevOptions {
        render: prepared.options,
        deploy,
        port_forward,
        tail: args.tail.unwrap_or(defaults.0),
        cleanup,
        reload: Some(reload),
    };
    let reporter: Arc<dyn Reporter> = Arc::new(ConsoleReporter::new(false, true));
    let loop_ = DevLoop::new(&prepared.loaded.configs, options, Arc::clone(&reporter))?;
    Ok(Prepared { loop_, reporter })
}

/// Completes at the first Ctrl-C (saying `message`); a second one exits at once.
fn ctrl_c(message: &'static str) -> impl std::future::Future<Output = ()> + Send {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            // No signal handling: never shut down by signal (the sender stays alive).
            std::future::pending::<()>().await;
        }
        let _ = writeln!(
            std::io::stderr().lock(),
            "{message} (press Ctrl-C again to exit at once)"
        );
        let _ = tx.send(());
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
    async move {
        let _ = rx.await;
    }
}

pub fn run(cli: &Cli, args: &RunArgs, env: BTreeMap<String, String>) -> anyhow::Result<()> {
    let prepared = prepare_loop(cli, &args.common, env, (false, PortForwardArg::Off), false)?;
    runtime()?.block_on(async move { prepared.loop_.run(ctrl_c("Stopping…")).await })?;
    Ok(())
}

pub fn dev(cli: &Cli, args: &DevArgs, env: BTreeMap<String, String>) -> anyhow::Result<()> {
    let prepared = prepare_loop(
        cli,
        &args.common,
        env,
        (true, PortForwardArg::User),
        args.cleanup,
    )?;
    let trigger = match args.trigger {
        TriggerArg::Notify => Trigger::Notify,
        TriggerArg::Polling => Trigger::Polling(Duration::from_millis(args.watch_poll_interval)),
    };
    runtime()?.block_on(async move {
        let watcher = NotifyWatcher::new(
            WatchOptions {
                roots: prepared.loop_.watch_roots(),
                trigger,
                ignore: IgnoreRules::default(),
                ..WatchOptions::default()
            },
            Arc::clone(&prepared.reporter),
        )?;
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
