//! The `skiff` binary. It owns the command line (flags, `SKAFFOLD_*` environment variables,
//! subcommands), gathering the process environment and working directory for the libraries,
//! and everything the user sees: output on stdout, warnings and errors on stderr, the exit
//! code. The work itself happens in the library crates.

// The binary is the one place that prints; libraries return values and errors.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod args;
mod build;
mod console;
mod control;
mod deploy;
mod dev;
mod diagnose;
mod diagnose_builder;
mod diagnose_sync;
mod events;
mod render;
mod report;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use crate::args::{Cli, Command, Verbosity};

fn main() -> ExitCode {
    // One TLS provider for every client (kube-rs and any other rustls user), chosen once.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let color = cli.global.color
        && env.get("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::io::stderr().is_terminal();
    console::allow_color(cli.global.color && env.get("NO_COLOR").is_none_or(|v| v.is_empty()));
    match run(&cli, env) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprint!("{}", report::render(&error, color));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli, env: BTreeMap<String, String>) -> anyhow::Result<()> {
    match &cli.command {
        Command::Build(args) => build::run(cli, args, env),
        Command::Apply(args) => deploy::apply(cli, args, env),
        Command::Test(args) => deploy::test(cli, args, env),
        Command::Verify(args) => deploy::verify(cli, args, env),
        Command::Exec(args) => deploy::exec(cli, args, env),
        Command::Deploy(args) => deploy::run(cli, args, env),
        Command::Delete => deploy::delete(cli, env),
        Command::Render(args) => render::run(cli, args, env),
        Command::Run(args) => dev::run(cli, args, env),
        Command::Dev(args) => dev::dev(cli, args, env),
        Command::Fix(args) => fix(cli, args, env),
        Command::Version => write_stdout(&format!("skiff {}\n", env!("CARGO_PKG_VERSION"))),
        Command::Diagnose(args) => {
            let cwd = std::env::current_dir().context("cannot read the working directory")?;
            let options = cli.global.load_options(cli.command.name(), env, cwd);
            let loaded = skiff_config::load(&options)?;
            if cli.global.verbosity >= Verbosity::Warn {
                for warning in &loaded.warnings {
                    eprintln!("warning: {warning}");
                }
            }
            let text = diagnose::render(
                &loaded,
                &diagnose::RenderOptions {
                    yaml_only: args.yaml_only,
                    namespace: cli.global.namespace.clone(),
                    default_repo: cli.global.default_repo.clone(),
                    docker_daemon_build: cli.global.docker_daemon_build,
                },
            )
            .context("cannot write the configuration as YAML")?;
            match &args.output {
                Some(path) => write_file(path, &text),
                None => write_stdout(&text),
            }
        }
    }
}

/// `skiff fix`: as `skaffold fix` — stdout, `-o FILE`, or `--overwrite` with a `.v2` backup.
fn fix(cli: &Cli, args: &args::FixArgs, env: BTreeMap<String, String>) -> anyhow::Result<()> {
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let options = cli.global.load_options(cli.command.name(), env, cwd);
    let file = skiff_config::config_file(&options)?;
    let version = args.version.as_deref().map(|v| {
        if v.starts_with("skaffold/") {
            v.to_owned()
        } else {
            format!("skaffold/{v}")
        }
    });
    let fixed = skiff_config::fix(&file, version.as_deref())?;
    if cli.global.verbosity >= Verbosity::Warn {
        for warning in &fixed.warnings {
            eprintln!("warning: {warning}");
        }
    }
    let version = version
        .as_deref()
        .unwrap_or(skiff_config::LATEST_API_VERSION);
    if !fixed.changed {
        return write_stdout(&format!("config is already version {version}\n"));
    }
    let target = match (&args.output, args.overwrite) {
        (Some(path), _) => path.clone(),
        (None, true) => file.clone(),
        (None, false) => return write_stdout(&fixed.text),
    };
    if args.overwrite {
        let backup = PathBuf::from(format!("{}.v2", file.display()));
        std::fs::copy(&file, &backup).with_context(|| {
            format!("cannot back up {} as {}", file.display(), backup.display())
        })?;
        eprintln!("Backed up previous config at {}", backup.display());
    }
    write_file(&target, &fixed.text)?;
    eprintln!(
        "New config at version {version} generated and written to {}",
        target.display()
    );
    Ok(())
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Write to stdout; a reader that went away (`skiff diagnose | head`) is not an error.
fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(error).context("cannot write to standard output")
        }
        _ => Ok(()),
    }
}
