//! Times and dates on the command line and in human output: the one formatter every command
//! uses, so a person reads every time the same way.
//!
//! Input: RFC 3339 (`2027-01-31T08:00:00+07:00`), a bare date (`2027-01-31`, midnight UTC)
//! or `now`; dates of documents as `2026-12-01` or the Vietnamese `01/12/2026`. Durations:
//! humantime (`7d`, `2y`, `12h`).
//!
//! Output for people: the machine's local time (`TZ`, else `/etc/localtime`, else UTC) with
//! its offset, `2026-11-23 09:15:00 +07:00`, so the offset says which clock it is. Output for
//! programs (`--json`): RFC 3339 in UTC, `2026-11-23T02:15:00Z`.

use std::sync::OnceLock;

use anyhow::{Context, bail};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, UtcOffset};

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

/// Parses a calendar date as people write it: ISO `2026-12-01`, or day first as Vietnamese
/// people do, `01/12/2026` (also `1/12/2026` and `01-12-2026`, `01.12.2026`). A date never
/// reads month first: `12/01/2026` is the 12th of January. `field` names it in the error.
pub(crate) fn parse_date(text: &str, field: &str) -> anyhow::Result<Date> {
    let t = text.trim();
    let problem =
        || anyhow::anyhow!("{field} {text:?} is not a date: write it as 2026-12-01 or 01/12/2026 (day/month/year)");
    let parts: Vec<&str> = if t.contains('/') {
        t.split('/').collect()
    } else if t.contains('.') {
        t.split('.').collect()
    } else {
        t.split('-').collect()
    };
    let [a, b, c] = parts.as_slice() else { return Err(problem()) };
    let number = |s: &str| -> Option<u32> {
        if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (Some(x), Some(y), Some(z)) = (number(a), number(b), number(c)) else { return Err(problem()) };
    // ISO puts the four-digit year first; the Vietnamese order puts it last.
    let (year, month, day) = match (a.len(), c.len()) {
        (4, 1..=2) if b.len() <= 2 => (x, y, z),
        (1..=2, 4) if b.len() <= 2 => (z, y, x),
        _ => return Err(problem()),
    };
    let month = u8::try_from(month).ok().and_then(|m| time::Month::try_from(m).ok()).ok_or_else(|| {
        anyhow::anyhow!("{field} {text:?}: there is no month {month} (day/month/year, or year-month-day)")
    })?;
    let year = i32::try_from(year).map_err(|_| problem())?;
    let day = u8::try_from(day).map_err(|_| problem())?;
    Date::from_calendar_date(year, month, day).map_err(|_| {
        anyhow::anyhow!("{field} {text:?}: {} {year} has {} days", month, time::util::days_in_month(month, year))
    })
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

/// The machine's time zone, read once: `TZ` (a zone name or a POSIX rule), else
/// `/etc/localtime`; `None` (UTC) when neither can be read. Read with tz-rs rather than the
/// C library, because `localtime_r` is not safe once the async runtime has started threads.
fn local_zone() -> Option<&'static tz::TimeZone> {
    static ZONE: OnceLock<Option<tz::TimeZone>> = OnceLock::new();
    ZONE.get_or_init(|| match std::env::var("TZ") {
        // A zone name (`Asia/Ho_Chi_Minh`, `:Asia/Ho_Chi_Minh`) or a POSIX rule (`ICT-7`).
        Ok(tz) if !tz.trim().is_empty() => tz::TimeZone::from_posix_tz(&tz).ok(),
        _ => tz::TimeZone::local().ok(),
    })
    .as_ref()
}

/// The machine's UTC offset at instant `t` (zones with daylight saving change it).
pub(crate) fn local_offset_at(t: OffsetDateTime) -> UtcOffset {
    local_zone()
        .and_then(|z| z.find_local_time_type(t.unix_timestamp()).ok())
        .and_then(|ty| UtcOffset::from_whole_seconds(ty.ut_offset()).ok())
        .unwrap_or(UtcOffset::UTC)
}

/// A time for people, in the machine's local time with the offset: `2026-11-23 09:15:00
/// +07:00`. Every command that prints a time for a person uses this one.
pub(crate) fn human(t: OffsetDateTime) -> String {
    let local = t.to_offset(local_offset_at(t));
    local
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second] [offset_hour sign:mandatory]:[offset_minute]"
        ))
        .unwrap_or_else(|_| local.to_string())
}

/// A time for programs (`--json`): RFC 3339 in UTC, `2026-11-23T02:15:00Z`.
pub(crate) fn machine(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC).format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// `text` with every time `pki` wrote into it (`2026-11-23 02:15:00 UTC`, its one format for
/// times in messages, which knows no time zone) shown as [`human`] shows times, so that a
/// report reads in one zone: `pki` reads no clock and no zone, the command line does. The
/// rewriting is `pki::document::report_text::localize`, which the report's lines use too.
pub(crate) fn localize(text: &str) -> String {
    pki::document::report_text::localize(text, &human)
}

/// A time given as Unix milliseconds (how the node stores its local times), for people.
pub(crate) fn human_millis(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).map(human).unwrap_or_else(|_| ms.to_string())
}

/// Vietnam's offset (UTC+7): the promulgation date of a document is a date in Vietnam,
/// whatever the zone of the machine that signs it.
pub(crate) const VIETNAM: UtcOffset = time::macros::offset!(+7);

/// Today's date in Vietnam.
pub(crate) fn today_vietnam() -> Date {
    now().to_offset(VIETNAM).date()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_pki_wrote_read_in_the_local_zone() {
        let t = OffsetDateTime::from_unix_timestamp(1_795_000_000).unwrap();
        let text = format!("revoked at {} (keyCompromise); claims {}", pki::format_utc(t), pki::format_utc(t));
        let local = localize(&text);
        assert_eq!(local, format!("revoked at {} (keyCompromise); claims {}", human(t), human(t)));
        // Text that only looks like it is left alone.
        for s in ["UTC", " UTC", "at 2026-13-40 99:00:00 UTC", "no time here", "ends in UTC"] {
            assert_eq!(localize(s), s);
        }
        assert_eq!(localize("2026-11-23 02:15:00 UTC"), human(time::macros::datetime!(2026-11-23 02:15:00 UTC)));
    }

    #[test]
    fn dates_read_iso_and_day_first() {
        let d = |y, m, day| Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), day).unwrap();
        assert_eq!(parse_date("2026-12-01", "due").unwrap(), d(2026, 12, 1));
        assert_eq!(parse_date("01/12/2026", "due").unwrap(), d(2026, 12, 1));
        assert_eq!(parse_date("1/12/2026", "due").unwrap(), d(2026, 12, 1));
        assert_eq!(parse_date("31.12.2099", "due").unwrap(), d(2099, 12, 31));
        assert_eq!(parse_date("31-12-2099", "due").unwrap(), d(2099, 12, 31));
        let e = parse_date("12/31/2026", "due").unwrap_err().to_string();
        assert!(e.contains("no month 31"), "{e}");
        let e = parse_date("31/02/2026", "due").unwrap_err().to_string();
        assert!(e.contains("February 2026 has 28 days"), "{e}");
        for bad in ["2026/13", "01/12/26", "hôm nay", "", "2026-1-1x", "+1/12/2026"] {
            let e = parse_date(bad, "due").unwrap_err().to_string();
            assert!(e.contains("01/12/2026 (day/month/year)") || e.contains("no month"), "{bad}: {e}");
        }
    }

    #[test]
    fn people_read_the_offset_programs_read_utc() {
        let t = OffsetDateTime::from_unix_timestamp(1_795_400_100).unwrap();
        let shown = human(t);
        let offset = local_offset_at(t);
        assert_eq!(
            shown,
            t.to_offset(offset)
                .format(format_description!(
                    "[year]-[month]-[day] [hour]:[minute]:[second] [offset_hour sign:mandatory]:[offset_minute]"
                ))
                .unwrap()
        );
        let offset_text = &shown[shown.len() - 6..];
        assert!(offset_text.starts_with('+') || offset_text.starts_with('-'), "the offset is shown: {shown}");
        assert_eq!(machine(t), "2026-11-23T02:15:00Z");
    }
}
