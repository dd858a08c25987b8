//! Renders the libraries' events for a person: one line per event on stdout (progress) or
//! stderr (warnings), as Skaffold prints them. On a terminal, long phases (a build, an
//! iteration) show a spinner with the time so far, and lines are coloured unless `--color=false`
//! or `NO_COLOR` says otherwise; piped output stays plain lines.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use skiff_types::event::{Event, Level, Reporter};

/// Whether the user allows colour (`--color`, `NO_COLOR`); set once by `main`.
static COLOR_ALLOWED: OnceLock<bool> = OnceLock::new();

/// Records the user's colour choice for every console reporter made afterwards.
pub fn allow_color(allowed: bool) {
    let _ = COLOR_ALLOWED.set(allowed);
}

/// How lines are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    /// ANSI colours.
    pub color: bool,
    /// Spinners for long phases (stdout is a terminal).
    pub live: bool,
}

impl Style {
    /// The style for this process's stdout.
    pub fn detect() -> Style {
        let terminal = std::io::stdout().is_terminal();
        Style {
            color: terminal && COLOR_ALLOWED.get().copied().unwrap_or(true),
            live: terminal,
        }
    }
}

const RESET: &str = "\x1b[0m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
/// Colours for log prefixes, one per image.
const LOG_COLORS: [&str; 5] = ["\x1b[36m", "\x1b[35m", "\x1b[34m", "\x1b[32m", "\x1b[33m"];

fn paint(color: &str, text: &str) -> String {
    format!("{color}{text}{RESET}")
}

/// Spinners of the phases under way: one per building image, one for the iteration.
#[derive(Debug)]
struct Live {
    bars: MultiProgress,
    spinners: BTreeMap<String, ProgressBar>,
}

impl Live {
    fn start(&mut self, key: String, message: String) {
        let bar = self.bars.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(100));
        if let Some(old) = self.spinners.insert(key, bar) {
            old.finish_and_clear();
        }
    }

    fn stop(&mut self, key: &str) {
        if let Some(bar) = self.spinners.remove(key) {
            bar.finish_and_clear();
            self.bars.remove(&bar);
        }
    }
}

/// Prints events as lines. `quiet` keeps only warnings.
#[derive(Debug)]
pub struct ConsoleReporter {
    quiet: bool,
    show_warnings: bool,
    style: Style,
    // One line at a time: builds run concurrently. Holds the spinners on a terminal.
    lock: Mutex<Option<Live>>,
}

impl ConsoleReporter {
    pub fn new(quiet: bool, show_warnings: bool) -> ConsoleReporter {
        ConsoleReporter::with_style(quiet, show_warnings, Style::detect())
    }

    pub fn with_style(quiet: bool, show_warnings: bool, style: Style) -> ConsoleReporter {
        let live = (style.live && !quiet).then(|| Live {
            bars: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            spinners: BTreeMap::new(),
        });
        ConsoleReporter {
            quiet,
            show_warnings,
            style,
            lock: Mutex::new(live),
        }
    }

    /// `text` as it is drawn: coloured by what it says when colours are on.
    fn styled(&self, event: &Event, text: String, warning: bool) -> String {
        if !self.style.color {
            return text;
        }
        match event {
            _ if warning => paint(YELLOW, &text),
            Event::IterationFinished { error: Some(_), .. } => paint(RED, &text),
            Event::IterationFinished { .. } | Event::Synced { .. } => paint(GREEN, &text),
            Event::LogLine { image, .. } => match text.split_once("] ") {
                Some((prefix, rest)) => {
                    let key = image.as_deref().unwrap_or(prefix);
                    let index = key.bytes().map(usize::from).sum::<usize>() % LOG_COLORS.len();
                    format!("{}] {rest}", paint(LOG_COLORS[index], prefix))
                }
                None => text,
            },
            _ => text,
        }
    }
}

/// The line for an event, and whether it is a warning (stderr).
pub fn line(event: &Event) -> Option<(String, bool)> {
    Some(match event {
        Event::Message {
            level: Level::Warning,
            text,
            ..
        } => (format!("warning: {text}"), true),
        Event::Message {
            level: Level::Info,
            text,
            ..
        } => (text.clone(), false),
        Event::Message { .. } => return None,
        Event::BuildStarted { image, builder } => {
            (format!("Building [{image}] with {builder}..."), false)
        }
        Event::BuildOutput { line, .. } => (format!("  {line}"), false),
        Event::BuildContext {
            image,
            bytes,
            files,
        } => (
            format!(
                "Sending build context for [{image}]: {files} files, {}",
                human_bytes(*bytes)
            ),
            false,
        ),
        Event::BuildFinished {
            image,
            reference,
            cache_hit,
            duration,
        } => {
            let how = if *cache_hit {
                "found in cache"
            } else {
                "built"
            };
            (
                format!(
                    "Build [{image}] {how} in {:.2}s: {reference}",
                    duration.as_secs_f64()
                ),
                false,
            )
        }
        Event::Pushed { reference, .. } => (format!("Pushed {reference}"), false),
        Event::Deployed { object, action } => (format!(" - {object} {action}"), false),
        Event::ResourceStatus { resource, status } => (format!(" - {resource}: {status}"), false),
        Event::ResourceReady { resource, duration } => (
            format!(" - {resource} is ready. [{:.2}s]", duration.as_secs_f64()),
            false,
        ),
        Event::PortForwarded {
            resource,
            remote_port,
            local_address,
        } => (
            format!("Port forwarding {resource} {remote_port} -> {local_address}"),
            false,
        ),
        Event::LogLine {
            pod,
            container,
            line,
            ..
        } => match pod {
            Some(pod) => (format!("[{pod} {container}] {line}"), false),
            None => (format!("[{container}] {line}"), false),
        },
        Event::IterationFinished { summary, .. } => (summary.clone(), false),
        _ => return None,
    })
}

fn human_bytes(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b < KIB {
        format!("{bytes} B")
    } else if b < KIB * KIB {
        format!("{:.1} KiB", b / KIB)
    } else {
        format!("{:.1} MiB", b / KIB / KIB)
    }
}

impl Reporter for ConsoleReporter {
    fn report(&self, event: Event) {
        let Ok(mut live) = self.lock.lock() else {
            return;
        };
        if let Some(live) = live.as_mut() {
            match &event {
                Event::BuildStarted { image, builder } => live.start(
                    format!("build {image}"),
                    format!("Building [{image}] with {builder}…"),
                ),
                Event::BuildFinished { image, .. } => live.stop(&format!("build {image}")),
                Event::IterationStarted { trigger } => {
                    live.start("iteration".into(), format!("{trigger} → working…"));
                }
                Event::IterationFinished { .. } => {
                    live.spinners.retain(|_, bar| {
                        bar.finish_and_clear();
                        false
                    });
                }
                _ => {}
            }
        }
        let Some((text, warning)) = line(&event) else {
            return;
        };
        if (warning && !self.show_warnings) || (!warning && self.quiet) {
            return;
        }
        let mut lines = Vec::new();
        if let Event::IterationFinished {
            error: Some(error), ..
        } = &event
        {
            let error = format!("error: {error}");
            lines.push((
                if self.style.color {
                    paint(RED, &error)
                } else {
                    error
                },
                true,
            ));
        }
        lines.push((self.styled(&event, text, warning), warning));
        // A closed pipe (`skiff build | head`) is not worth failing a build over.
        let print = || {
            for (text, to_stderr) in &lines {
                if *to_stderr {
                    let _ = writeln!(std::io::stderr().lock(), "{text}");
                } else {
                    let _ = writeln!(std::io::stdout().lock(), "{text}");
                }
            }
        };
        match live.as_ref() {
            Some(live) if !live.spinners.is_empty() => live.bars.suspend(print),
            _ => print(),
        }
    }
}

/// Hands events on to a console, holding back a build warning that the previous iteration
/// which built already printed: a fault that lasts (the cache file's disk is full, say) is
/// reported once, not after every save. Once a building iteration passes without it, it counts
/// as gone, so the next time it happens it is printed again. Only the console is spared; the
/// event log and the HTTP API get every event.
#[derive(Debug)]
pub struct RepeatFilter<R> {
    inner: R,
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    /// Build warnings of the last iteration that built.
    previous: std::collections::BTreeSet<String>,
    /// Build warnings so far in this iteration.
    current: std::collections::BTreeSet<String>,
    /// Whether this iteration built (or found in the cache) anything.
    built: bool,
}

impl<R: Reporter> RepeatFilter<R> {
    pub fn new(inner: R) -> RepeatFilter<R> {
        RepeatFilter {
            inner,
            seen: Mutex::new(Seen::default()),
        }
    }

    /// Whether `event` repeats what the console said in the last building iteration; keeps
    /// track of iterations and build warnings on the way.
    fn repeated(&self, event: &Event) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        match event {
            Event::IterationStarted { .. } => {
                let current = std::mem::take(&mut seen.current);
                if seen.built {
                    seen.previous = current;
                } else {
                    // A sync-only iteration says nothing about build faults.
                    seen.previous.extend(current);
                }
                seen.built = false;
                false
            }
            Event::BuildStarted { .. } | Event::BuildFinished { .. } => {
                seen.built = true;
                false
            }
            Event::Message {
                source: "build",
                level: Level::Warning,
                text,
            } => {
                seen.current.insert(text.clone());
                seen.previous.contains(text)
            }
            _ => false,
        }
    }
}

impl<R: Reporter> Reporter for RepeatFilter<R> {
    fn report(&self, event: Event) {
        if !self.repeated(&event) {
            self.inner.report(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn colours_follow_the_style() {
        let plain = ConsoleReporter::with_style(false, true, Style::default());
        let coloured = ConsoleReporter::with_style(
            false,
            true,
            Style {
                color: true,
                live: false,
            },
        );
        let failed = Event::IterationFinished {
            trigger: "main.c".into(),
            summary: "main.c → build failed".into(),
            total: Duration::from_millis(5),
            phases: Vec::new(),
            error: Some("boom".into()),
        };
        assert_eq!(
            plain.styled(&failed, "main.c → build failed".into(), false),
            "main.c → build failed"
        );
        assert_eq!(
            coloured.styled(&failed, "main.c → build failed".into(), false),
            "\x1b[31mmain.c → build failed\x1b[0m"
        );
        let warning = Event::Message {
            source: "deploy",
            level: Level::Warning,
            text: "port taken".into(),
        };
        assert_eq!(
            coloured.styled(&warning, "warning: port taken".into(), true),
            "\x1b[33mwarning: port taken\x1b[0m"
        );
        let log = Event::LogLine {
            pod: None,
            container: "web".into(),
            image: Some("app".into()),
            line: "up".into(),
        };
        let styled = coloured.styled(&log, "[web] up".into(), false);
        assert!(
            styled.starts_with("\x1b[") && styled.ends_with("\x1b[0m] up"),
            "{styled:?}"
        );
        assert!(
            plain.lock.lock().is_ok_and(|live| live.is_none()),
            "no spinners off a terminal"
        );
    }

    #[test]
    fn deploy_lines() {
        let forwarded = Event::PortForwarded {
            resource: "service/web".into(),
            remote_port: 8080,
            local_address: "127.0.0.1:8080".into(),
        };
        assert_eq!(
            line(&forwarded).map(|l| l.0),
            Some("Port forwarding service/web 8080 -> 127.0.0.1:8080".into())
        );
        let log = Event::LogLine {
            pod: Some("web-1".into()),
            container: "server".into(),
            image: None,
            line: "up".into(),
        };
        assert_eq!(line(&log).map(|l| l.0), Some("[web-1 server] up".into()));
    }

    #[test]
    fn iteration_line() {
        let finished = Event::IterationFinished {
            trigger: "main.c".into(),
            summary: "main.c → rebuilt app (0.61 s), applied 1 object — total 1.12 s".into(),
            total: Duration::from_millis(1120),
            phases: vec![("build".into(), Duration::from_millis(610))],
            error: None,
        };
        assert_eq!(
            line(&finished),
            Some((
                "main.c → rebuilt app (0.61 s), applied 1 object — total 1.12 s".into(),
                false
            ))
        );
        let started = Event::IterationStarted {
            trigger: "main.c".into(),
        };
        assert_eq!(line(&started), None);
    }

    #[test]
    fn build_lines() {
        let finished = Event::BuildFinished {
            image: "app".into(),
            reference: "app:v1".into(),
            cache_hit: true,
            duration: Duration::from_millis(1500),
        };
        assert_eq!(
            line(&finished),
            Some(("Build [app] found in cache in 1.50s: app:v1".into(), false))
        );
        let context = Event::BuildContext {
            image: "app".into(),
            bytes: 3 * 1024 * 1024,
            files: 2,
        };
        assert_eq!(
            line(&context).map(|l| l.0),
            Some("Sending build context for [app]: 2 files, 3.0 MiB".into())
        );
    }

    /// The build warnings a [`RepeatFilter`] lets through while it sees `iterations`: per
    /// iteration, whether it builds and which build warnings it reports.
    fn passed(iterations: &[(bool, &[&str])]) -> Vec<String> {
        let filter = RepeatFilter::new(skiff_types::event::CollectingReporter::default());
        for (i, (builds, warnings)) in iterations.iter().enumerate() {
            filter.report(Event::IterationStarted {
                trigger: format!("save {i}"),
            });
            if *builds {
                filter.report(Event::BuildStarted {
                    image: "app".into(),
                    builder: "custom".into(),
                });
            }
            for text in *warnings {
                filter.report(Event::Message {
                    source: "build",
                    level: Level::Warning,
                    text: (*text).to_owned(),
                });
            }
        }
        filter
            .inner
            .events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Message { text, .. } => Some(text),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_lasting_build_warning_is_printed_once_per_fault() {
        let full = "the build cache was not saved: disk full";
        assert_eq!(
            passed(&[
                (true, &[full]),
                (true, &[full]),
                // Synced only: the fault may still be there.
                (false, &[]),
                (true, &[full]),
                // Space freed: the fault is over; the next one is news.
                (true, &[]),
                (true, &[full]),
            ]),
            [full, full]
        );
    }

    #[test]
    fn other_warnings_and_other_sources_pass() {
        let filter = RepeatFilter::new(skiff_types::event::CollectingReporter::default());
        for _ in 0..2 {
            filter.report(Event::IterationStarted {
                trigger: "save".into(),
            });
            filter.report(Event::BuildStarted {
                image: "app".into(),
                builder: "custom".into(),
            });
            filter.report(Event::Message {
                source: "deploy",
                level: Level::Warning,
                text: "port 9080 is already in use".into(),
            });
        }
        assert_eq!(filter.inner.events().len(), 6);
        assert_eq!(
            passed(&[(true, &["a"]), (true, &["b"]), (true, &["a", "b"])]),
            ["a", "b", "a"]
        );
    }
}
