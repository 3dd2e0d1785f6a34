//! Timing loops, and the figures a run prints (a row each, next to its limit and the ratio)
//! and writes as JSON.

use std::time::{Duration, Instant};

use serde::Serialize;

/// Runs `op` repeatedly for about `window`, three times, and returns the median rate per
/// second.
pub fn rate(window: Duration, mut op: impl FnMut()) -> f64 {
    let mut rates = Vec::with_capacity(3);
    for _ in 0..3 {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < window {
            for _ in 0..16 {
                op();
            }
            n += 16;
        }
        rates.push(n as f64 / start.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    rates[1]
}

/// [`rate`] on every core at once (one thread per core, each with its own `op` from `make`),
/// summed: what the machine can do, not one thread.
pub fn rate_on_all_cores<F: FnMut()>(window: Duration, make: impl Fn() -> F + Sync) -> f64 {
    let threads = cores();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(|| rate(window, make()))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    })
}

/// CPU time this process has used so far, every thread (user + system, from `/proc/self/stat`,
/// in the kernel's 10 ms ticks): divided by the documents of a run, it is a cost that other
/// work on the machine does not inflate the way it inflates a rate.
pub fn process_cpu() -> Duration {
    cpu_of("self")
}

/// [`process_cpu`] of another process (`pid`), zero once it is gone. A process that has
/// exited but not been waited for still shows its times.
pub fn cpu_of_pid(pid: u32) -> Duration {
    cpu_of(&pid.to_string())
}

fn cpu_of(pid: &str) -> Duration {
    let stat = ProcStat::read(pid).unwrap_or_default();
    ticks(stat.utime + stat.stime)
}

/// The kernel's ticks of CPU time (10 ms each) as a duration.
pub fn ticks(n: u64) -> Duration {
    Duration::from_millis(n * 10)
}

/// What `/proc/PID/stat` says of a process's parent and CPU time (in ticks, see [`ticks`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcStat {
    /// Its parent.
    pub ppid: u32,
    /// Its own CPU time in user mode and in the kernel.
    pub utime: u64,
    pub stime: u64,
    /// The CPU time of its children that have exited and that it waited for.
    pub cutime: u64,
    pub cstime: u64,
}

impl ProcStat {
    /// The process `pid` (a number, or `self`); `None` once it is gone.
    pub fn read(pid: &str) -> Option<ProcStat> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The fields after the command name, which is in parentheses and may hold spaces:
        // ppid is the 2nd of them, utime, stime, cutime and cstime the 12th to 15th.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        Some(ProcStat {
            ppid: u32::try_from(field(1)).unwrap_or(0),
            utime: field(11),
            stime: field(12),
            cutime: field(13),
            cstime: field(14),
        })
    }
}

/// The cores this process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The median and the 99th percentile of `samples`, in milliseconds.
pub fn percentiles_ms(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let at = |q: usize| samples[(samples.len() * q / 100).min(samples.len() - 1)].as_secs_f64() * 1e3;
    (at(50), at(99))
}

/// One measured figure. `ratio` is `value / limit`: for a rate, the share of the limit
/// reached (higher is better); for a time, how many times the floor it takes (lower is
/// better).
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: String,
    pub limit: Option<f64>,
    pub ratio: Option<f64>,
}

/// The figures of a run, printed as they come.
#[derive(Debug, Default)]
pub struct Figures {
    pub figures: Vec<Figure>,
}

impl Figures {
    pub fn new() -> Figures {
        Figures::default()
    }

    /// Prints a section heading.
    pub fn section(&self, title: &str) {
        println!("\n== {title}");
    }

    /// Prints a note under the last row.
    pub fn note(&self, text: &str) {
        println!("  {:<64} {text}", "");
    }

    /// Records a limit (or a figure with nothing to compare it with) and returns its value.
    pub fn limit(&mut self, name: &str, label: &str, value: f64, unit: &str) -> f64 {
        println!("  {label:<64} {:>12} {unit:<9} (limit)", human(value));
        self.push(name, value, unit, None);
        value
    }

    /// Records a figure that has no measured limit to be compared with (memory) and returns
    /// its value.
    pub fn alone(&mut self, name: &str, label: &str, value: f64, unit: &str) -> f64 {
        println!("  {label:<64} {:>12} {unit:<9} (no limit)", human(value));
        self.push(name, value, unit, None);
        value
    }

    /// Records a figure without printing it (its row or a note already shows it).
    pub fn record(&mut self, name: &str, value: f64, unit: &str) {
        self.push(name, value, unit, None);
    }

    /// Records a figure next to the limit it is compared with (`limit_label`, `limit`) and
    /// returns its value.
    pub fn against(&mut self, name: &str, label: &str, value: f64, unit: &str, limit: (&str, f64)) -> f64 {
        let (limit_label, limit) = limit;
        println!(
            "  {label:<64} {:>12} {unit:<9} {:>8.3} x {limit_label} ({})",
            human(value),
            value / limit,
            human(limit)
        );
        self.push(name, value, unit, Some(limit));
        value
    }

    fn push(&mut self, name: &str, value: f64, unit: &str, limit: Option<f64>) {
        self.figures.push(Figure {
            name: name.to_owned(),
            value,
            unit: unit.to_owned(),
            limit,
            ratio: limit.map(|l| value / l),
        });
    }

    /// The value of the figure `name`, if it was measured.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.figures.iter().find(|f| f.name == name).map(|f| f.value)
    }
}

/// A figure as people read it: thousands grouped for large values, three significant
/// digits for small ones.
pub fn human(value: f64) -> String {
    if value.abs() >= 100.0 {
        let digits = format!("{:.0}", value);
        let (sign, digits) = digits.strip_prefix('-').map_or(("", digits.as_str()), |d| ("-", d));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_as_people_write_them() {
        assert_eq!(human(22027.4), "22,027");
        assert_eq!(human(1_146_000.0), "1,146,000");
        assert_eq!(human(262.0), "262");
        assert_eq!(human(22.71), "22.7");
        assert_eq!(human(0.0561), "0.056");
    }

    #[test]
    fn a_ratio_is_the_value_over_its_limit() {
        let mut f = Figures::new();
        f.limit("l", "limit", 200.0, "docs/s");
        f.against("x", "x", 50.0, "docs/s", ("l", 200.0));
        assert_eq!(f.figures[0].ratio, None);
        assert_eq!(f.figures[1].ratio, Some(0.25));
        assert_eq!(f.get("x"), Some(50.0));
    }
}
