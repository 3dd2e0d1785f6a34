//! Timing loops: run an operation for a fixed wall time, three times, report the median rate.

use std::time::{Duration, Instant};

/// Runs `op` repeatedly for about `window`, three times, and returns the median rate per
/// second.
pub(crate) fn rate(window: Duration, mut op: impl FnMut()) -> f64 {
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

/// Prints one result line: name, rate, and ratio to a reference rate.
pub(crate) fn report(name: &str, rate: f64, unit: &str, reference: Option<(&str, f64)>) {
    match reference {
        Some((ref_name, ref_rate)) => {
            println!("  {name:<52} {rate:>12.0} {unit}/s   {:>6.3} x {ref_name}", rate / ref_rate)
        }
        None => println!("  {name:<52} {rate:>12.0} {unit}/s   (reference)"),
    }
}
