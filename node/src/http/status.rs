//! `lienthong-node status`: ask the running node for its health read-out over the web face
//! (with the node's own certificate, so no operator certificate is needed on the node's
//! machine), and print it as a table for people (or as the JSON itself for scripts).

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use super::client::{Client, ClientError, ServerCheck};
use crate::config::Config;

/// How long `status` waits for the running node.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(10);

/// Where to reach this node's web face from its own machine: the listen address, with an
/// unspecified IP (`0.0.0.0`, `::`) replaced by loopback.
pub fn local_address(listen: SocketAddr) -> SocketAddr {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

/// Asks the running node described by `config` for `/status.json`. `Ok(None)` when the web
/// face is off (`[http]` absent), so the caller reads the database instead.
pub async fn ask(config: &Config) -> Result<Option<Value>, ClientError> {
    let Some(http) = &config.http else { return Ok(None) };
    let web_identity = http.identity.as_ref().unwrap_or(&config.tls);
    let pinned = web_identity.chain.first().map(|c| c.der().to_vec()).unwrap_or_default();
    let client = Client::new(local_address(http.listen), Some(&config.tls), ServerCheck::Pinned(pinned), ASK_TIMEOUT)?;
    let answer = client.get("/status.json").await?;
    if answer.status != 200 {
        return Err(ClientError::Http(format!("status {}: {}", answer.status, answer.text().trim())));
    }
    serde_json::from_slice(&answer.body).map(Some).map_err(|e| ClientError::Http(format!("unreadable answer: {e}")))
}

fn num(v: &Value, key: &str) -> i64 {
    v.get(key).and_then(Value::as_i64).unwrap_or(0)
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn ago(seconds: Option<i64>) -> String {
    match seconds {
        Some(s) => format!("{} ago", humantime::format_duration(Duration::from_secs(s.max(0) as u64))),
        None => "—".into(),
    }
}

/// The read-out as a table. `source` says where it came from.
pub fn table(health: &Value, source: &str) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    let uptime = health
        .get("uptime_seconds")
        .and_then(Value::as_i64)
        .map(|s| format!(", up {}", humantime::format_duration(Duration::from_secs(s.max(0) as u64))))
        .unwrap_or_default();
    line(format!("{} ({}){uptime}", text(health, "name"), text(health, "agency")));
    line(format!("  ({source})"));
    let alerts = health.get("alerts").and_then(Value::as_array).cloned().unwrap_or_default();
    line(String::new());
    if alerts.is_empty() {
        line("ALERTS       none".into());
    } else {
        line(format!("ALERTS       {}", alerts.len()));
        for a in &alerts {
            line(format!("  ! {}", a.as_str().unwrap_or("")));
        }
    }
    let q = health.get("queue").cloned().unwrap_or(Value::Null);
    line(format!(
        "OUTBOX       pending {} (retrying {}, oldest {} s, backlog {}), in flight {} (stuck {}), dead {}, refused {}, done {}",
        num(&q, "pending"),
        num(&q, "retrying"),
        num(&q, "oldest_pending_seconds"),
        num(&q, "backlog"),
        num(&q, "in_flight"),
        num(&q, "stuck"),
        num(&q, "dead"),
        num(&q, "refused"),
        num(&q, "done")
    ));
    let neighbours = health.get("neighbours").and_then(Value::as_array).cloned().unwrap_or_default();
    if !neighbours.is_empty() {
        line(String::new());
        line(format!(
            "{:<16} {:>8} {:>9} {:>8}  {:<18} {:<18} LAST ERROR",
            "NEIGHBOUR", "PENDING", "RETRYING", "OLDEST", "LAST HAND-OVER", "LAST ANSWER"
        ));
        for n in &neighbours {
            line(format!(
                "{:<16} {:>8} {:>9} {:>6} s  {:<18} {:<18} {}",
                text(n, "agency"),
                num(n, "pending"),
                num(n, "retrying"),
                num(n, "oldest_pending_seconds"),
                ago(n.get("last_handover_seconds_ago").and_then(Value::as_i64)),
                ago(n.get("last_answer_seconds_ago").and_then(Value::as_i64)),
                text(n, "last_error")
            ));
        }
    }
    let dead = health.get("dead_letters").and_then(Value::as_array).cloned().unwrap_or_default();
    if !dead.is_empty() {
        line(String::new());
        line("DEAD LETTERS (#, document, next hop, last error)".into());
        for d in &dead {
            let f = |i: usize| {
                d.get(i).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).unwrap_or_default()
            };
            line(format!("  #{} {} → {}: {}", f(0), f(1), f(2), f(3)));
        }
    }
    line(String::new());
    for c in health.get("certificates").and_then(Value::as_array).cloned().unwrap_or_default() {
        line(format!(
            "CERTIFICATE  {} — expires {} ({} days)",
            text(&c, "certificate"),
            text(&c, "not_after"),
            num(&c, "days_left")
        ));
    }
    let crls = health.get("crls").and_then(Value::as_array).cloned().unwrap_or_default();
    if crls.is_empty() {
        line("CRLS         none held".into());
    }
    for c in &crls {
        let stale = c.get("stale").and_then(Value::as_bool).unwrap_or(false);
        line(format!(
            "CRL          {} — issued {}, next {}{}",
            text(c, "issuer"),
            text(c, "this_update"),
            text(c, "next_update"),
            if stale { " — STALE" } else { "" }
        ));
    }
    if let Some(m) = health.get("mail") {
        line(format!(
            "MAIL         pending {} (retrying {}, oldest {} s), dead {}, sent {}",
            num(m, "pending"),
            num(m, "retrying"),
            num(m, "oldest_pending_seconds"),
            num(m, "dead"),
            num(m, "sent")
        ));
    }
    if let Some(s) = health.get("storage") {
        for f in s.get("free").and_then(Value::as_array).cloned().unwrap_or_default() {
            let free = f
                .get("free_bytes")
                .and_then(Value::as_u64)
                .map_or("unknown".into(), |b| format!("{:.1} MiB", b as f64 / 1_048_576.0));
            line(format!("FREE SPACE   {} on {}", free, text(&f, "path")));
        }
    }
    if let Some(since) = health.get("since_start").and_then(Value::as_object)
        && !since.is_empty()
    {
        let parts: Vec<String> = since.iter().map(|(k, v)| format!("{k} {v}")).collect();
        line(format!("SINCE START  {}", parts.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_alerts_neighbours_and_certificates() {
        let health = serde_json::json!({
            "agency": "000.01.41.H49", "name": "Phong Dụ", "uptime_seconds": 65,
            "queue": { "pending": 3, "retrying": 2, "dead": 1, "refused": 0, "done": 9, "oldest_pending_seconds": 45, "backlog": 0, "in_flight": 1, "stuck": 0 },
            "neighbours": [{ "agency": "000.00.41.H49", "pending": 3, "retrying": 2, "oldest_pending_seconds": 45, "last_handover_seconds_ago": 120, "last_error": "timed out" }],
            "dead_letters": [[7, "000.01.41.H49,2026/11/23,1/UBND", "000.00.41.H49", "refused"]],
            "certificates": [{ "certificate": "node: X", "not_after": "2027-01-01T00:00:00Z", "days_left": 40 }],
            "crls": [], "alerts": ["neighbour 000.00.41.H49 looks down"],
        });
        let t = table(&health, "asked the running node");
        for want in [
            "Phong Dụ (000.01.41.H49), up 1m 5s",
            "ALERTS       1",
            "! neighbour 000.00.41.H49 looks down",
            "pending 3 (retrying 2, oldest 45 s",
            "000.00.41.H49           3         2     45 s  2m ago",
            "#7 000.01.41.H49,2026/11/23,1/UBND → 000.00.41.H49: refused",
            "(40 days)",
            "CRLS         none held",
        ] {
            assert!(t.contains(want), "{want:?} not in\n{t}");
        }
    }

    #[test]
    fn an_unspecified_listen_address_is_asked_on_loopback() {
        assert_eq!(local_address("0.0.0.0:8443".parse().unwrap()), "127.0.0.1:8443".parse().unwrap());
        assert_eq!(local_address("[::]:8443".parse().unwrap()), "[::1]:8443".parse().unwrap());
        assert_eq!(local_address("10.0.0.5:8443".parse().unwrap()), "10.0.0.5:8443".parse().unwrap());
    }
}
