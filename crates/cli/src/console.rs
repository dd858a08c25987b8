//! Renders the libraries' events for a person: one line per event on stdout (progress) or
//! stderr (warnings), as Skaffold prints them.

use std::io::Write;
use std::sync::Mutex;

use skiff_types::event::{Event, Level, Reporter};

/// Prints events as lines. `quiet` keeps only warnings.
#[derive(Debug)]
pub struct ConsoleReporter {
    quiet: bool,
    show_warnings: bool,
    // One line at a time: builds run concurrently.
    lock: Mutex<()>,
}

impl ConsoleReporter {
    pub fn new(quiet: bool, show_warnings: bool) -> ConsoleReporter {
        ConsoleReporter {
            quiet,
            show_warnings,
            lock: Mutex::new(()),
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
        let Some((text, warning)) = line(&event) else {
            return;
        };
        if (warning && !self.show_warnings) || (!warning && self.quiet) {
            return;
        }
        let _guard = self.lock.lock();
        if let Event::IterationFinished {
            error: Some(error), ..
        } = &event
        {
            let _ = writeln!(std::io::stderr().lock(), "error: {error}");
        }
        // A closed pipe (`skiff build | head`) is not worth failing a build over.
        if warning {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        } else {
            let _ = writeln!(std::io::stdout().lock(), "{text}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
}
