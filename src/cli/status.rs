//! The live status line and the final summary.

use std::io::Write;
use std::time::Duration;

use inferwatch::Snapshot;

/// Rewrites one line on a terminal every second; prints nothing when off.
pub(crate) struct StatusLine {
    enabled: bool,
    shown: bool,
}

impl StatusLine {
    pub(crate) fn new(enabled: bool) -> Self {
        StatusLine { enabled, shown: false }
    }

    pub(crate) fn update(&mut self, elapsed: Duration, snapshot: &Snapshot, alarms: &[String]) {
        if !self.enabled {
            return;
        }
        let mut line = format_line(elapsed, snapshot);
        if !alarms.is_empty() {
            line.push_str(&format!("  ALARM {}", alarms.join(", ")));
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{line}");
        let _ = err.flush();
        self.shown = true;
    }

    pub(crate) fn finish(&mut self) {
        if self.shown {
            eprintln!();
            self.shown = false;
        }
    }
}

fn number(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.decimals$}"))
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.0}%"))
}

/// Formats `12s  1234 inferences  mean 2.31 ms  p99 3.10 ms  cpu 45%  gpu –`.
pub(crate) fn format_line(elapsed: Duration, s: &Snapshot) -> String {
    let mut line = format!(
        "{:>4}s  {} inferences  mean {} ms  p99 {} ms  cpu {}  gpu {}",
        elapsed.as_secs(),
        s.inference_count,
        number(s.avg_inference_time, 2),
        number(s.p99_inference_time, 2),
        percent(s.cpu_load_per_inference),
        percent(s.gpu_load_per_inference),
    );
    if s.failed_inferences > 0 {
        line.push_str(&format!("  failed {}", s.failed_inferences));
    }
    line
}

/// Prints the final window statistics to stderr.
pub(crate) fn print_summary(elapsed: Duration, s: &Snapshot) {
    eprintln!(
        "ran {:.1} s: {} inferences ({} failed) in the last {:.0} s window\n\
         latency ms: mean {}  p50 {}  p90 {}  p99 {}  min {}  max {}\n\
         load: cpu {}  foreign cpu {}  gpu {}  foreign gpu {}",
        elapsed.as_secs_f64(),
        s.inference_count,
        s.failed_inferences,
        s.window_seconds,
        number(s.avg_inference_time, 3),
        number(s.p50_inference_time, 3),
        number(s.p90_inference_time, 3),
        number(s.p99_inference_time, 3),
        number(s.min_inference_time, 3),
        number(s.max_inference_time, 3),
        percent(s.cpu_load_per_inference),
        percent(s.foreign_cpu_load),
        percent(s.gpu_load_per_inference),
        percent(s.foreign_gpu_load),
    );
}
