//! The wire protocol (crate `lienthong-protocol`, re-exported here), and how a node reads a
//! request frame as a server: within its deadline and its memory budget.

use std::time::Duration;

use serde::Deserialize;

pub use lienthong_protocol::wire::*;

use crate::budget::{BudgetError, Lease};
use crate::config::Limits;

/// Why a request frame was not read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The frame itself is refused (too large, malformed, the stream failed).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The frame did not arrive by its deadline (`limits.frame_timeout` plus its size at
    /// `limits.min_transfer_rate`).
    #[error("the request frame did not arrive within {} ({received} of {} bytes came)", humantime::format_duration(*allowed), .len.map_or("its".to_owned(), |l| l.to_string()))]
    TimedOut {
        /// Bytes of the frame received (the 4-byte header not counted).
        received: usize,
        /// Its declared length, if the header came.
        len: Option<usize>,
        /// The time it had.
        allowed: Duration,
    },
    /// No room in the frame budgets before the deadline.
    #[error(transparent)]
    Busy(#[from] BudgetError),
}

impl RequestError {
    /// How a node answers a request frame that failed this way: worth retrying or not.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RequestError::TimedOut { .. } | RequestError::Busy(_) => ErrorKind::Unavailable,
            RequestError::Frame(e) => e.kind(),
        }
    }
}

/// `from` plus `d`, or a year from `from` if that is beyond what the clock can count (a
/// configuration allowing absurdly slow transfers).
pub fn deadline_after(from: tokio::time::Instant, d: Duration) -> tokio::time::Instant {
    from.checked_add(d).unwrap_or_else(|| from + Duration::from_secs(365 * 86_400))
}

/// Reads one request frame as a server does: within its deadline and its memory budget.
///
/// The header must arrive within `limits.frame_timeout` of `opened` (when the stream was
/// accepted), the whole frame within that plus its size at `limits.min_transfer_rate`; a frame
/// declaring more than `limits.max_frame_bytes` is refused before anything else is read. The
/// buffer grows as bytes arrive, and every growth is first taken from `lease`, which the caller
/// keeps until the request is served.
pub async fn read_request<T: for<'de> Deserialize<'de>>(
    recv: &mut quinn::RecvStream,
    limits: &Limits,
    lease: &mut Lease,
    opened: tokio::time::Instant,
) -> Result<T, RequestError> {
    let max = limits.max_frame_bytes;
    let header_deadline = deadline_after(opened, limits.frame_timeout);
    let mut len = [0u8; 4];
    match tokio::time::timeout_at(header_deadline, recv.read_exact(&mut len)).await {
        Ok(r) => r.map_err(|e| FrameError::Stream(describe(&e)))?,
        Err(_) => return Err(RequestError::TimedOut { received: 0, len: None, allowed: limits.frame_timeout }),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len: len as u64, max }.into());
    }
    let allowed = limits.frame_time(len as u64);
    let deadline = deadline_after(opened, allowed);
    let timed_out = |received| RequestError::TimedOut { received, len: Some(len), allowed };
    // `body` is zero-filled up to what the lease holds; `filled` bytes of it have arrived.
    let mut body: Vec<u8> = Vec::new();
    let mut filled = 0;
    while filled < len {
        if filled == body.len() {
            let grow_to = (body.len().max(32 * 1024) * 2).min(len);
            lease.grow(grow_to - body.len(), deadline).await?;
            body.reserve_exact(grow_to - body.len());
            body.resize(grow_to, 0);
        }
        match tokio::time::timeout_at(deadline, recv.read(&mut body[filled..])).await {
            Err(_) => return Err(timed_out(filled)),
            Ok(Err(e)) => return Err(FrameError::Stream(describe(&e)).into()),
            Ok(Ok(Some(n))) => filled += n,
            Ok(Ok(None)) => {
                return Err(FrameError::Stream(format!("stream ended {filled} bytes into a {len}-byte frame")).into());
            }
        }
    }
    Ok(decode(&body, max)?)
}
