//! Times and durations on the command line and in human output.
//!
//! Input: RFC 3339 (`2027-01-31T08:00:00+07:00`), a bare date (`2027-01-31`, midnight UTC)
//! or `now`. Durations: humantime (`7d`, `2y`, `12h`). Output: UTC, to the second.

use anyhow::{Context, bail};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

/// Parses a time argument.
pub(crate) fn parse_time(text: &str) -> anyhow::Result<OffsetDateTime> {
    if text == "now" {
        return Ok(now());
    }
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(t);
    }
    if let Ok(d) = Date::parse(text, format_description!("[year]-[month]-[day]")) {
        return Ok(d.midnight().assume_utc());
    }
    bail!("cannot read time {text:?}: use 2027-01-31, 2027-01-31T08:00:00Z or now")
}

/// Parses a duration argument into whole seconds.
pub(crate) fn parse_duration(text: &str) -> anyhow::Result<time::Duration> {
    let std =
        humantime::parse_duration(text).with_context(|| format!("cannot read duration {text:?} (e.g. 7d, 2y)"))?;
    time::Duration::try_from(std).with_context(|| format!("duration {text:?} is too long"))
}

/// `start` plus a validity period. Whole years (`2y`, `20years`) are calendar years, so a
/// certificate issued on 23 November ends on 23 November; other units go through humantime.
pub(crate) fn add_period(start: OffsetDateTime, text: &str) -> anyhow::Result<OffsetDateTime> {
    let years = text.strip_suffix("years").or_else(|| text.strip_suffix("year")).or_else(|| text.strip_suffix('y'));
    if let Some(n) = years.and_then(|n| n.trim().parse::<i32>().ok()) {
        let date = start.date();
        let target_year = date.year() + n;
        // 29 February falls back to 28 February in a non-leap target year.
        let day = date.day().min(time::util::days_in_month(date.month(), target_year));
        let end = Date::from_calendar_date(target_year, date.month(), day)
            .with_context(|| format!("validity {text:?} ends outside the calendar"))?;
        return Ok(start.replace_date(end));
    }
    Ok(start + parse_duration(text)?)
}

/// The wall clock, read only at the edge of the program and passed inward.
pub(crate) fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    // Certificates and CRLs have second resolution.
    t.replace_nanosecond(0).unwrap_or(t)
}

/// A time for people: `2026-11-23 08:15:00 UTC`.
pub(crate) fn human(t: OffsetDateTime) -> String {
    pki::format_utc(t)
}

/// Vietnam's offset (ICT, UTC+7): the time clerks read, whatever the machine's zone.
pub(crate) const VIETNAM: time::UtcOffset = time::macros::offset!(+7);

/// Today's date in Vietnam.
pub(crate) fn today_vietnam() -> Date {
    now().to_offset(VIETNAM).date()
}

/// A time for clerks: `2026-11-23 09:15 ICT`.
pub(crate) fn clerk_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(VIETNAM);
    t.format(format_description!("[year]-[month]-[day] [hour]:[minute]:[second] ICT")).unwrap_or_else(|_| t.to_string())
}
