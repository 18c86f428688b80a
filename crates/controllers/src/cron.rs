//! Cron schedules as CronJobs use them: five fields (minute, hour, day of month, month, day
//! of week) with `*`, ranges, steps, lists and month/day names, or the `@yearly`,
//! `@monthly`, `@weekly`, `@daily`/`@midnight`, `@hourly` macros; evaluated in a time zone.
//! As in cron (and Kubernetes' robfig/cron), when both day fields are restricted a day
//! matches if either does.
//!
//! Written here rather than taken from a crate: the maintained cron crates compute with
//! chrono, while berth (like k8s-openapi) uses jiff; the grammar is small.

use std::collections::BTreeSet;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;

/// A parsed schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    minutes: BTreeSet<u8>,
    hours: BTreeSet<u8>,
    days: BTreeSet<u8>,
    months: BTreeSet<u8>,
    weekdays: BTreeSet<u8>,
    days_restricted: bool,
    weekdays_restricted: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn value(s: &str, names: &[&str], offset: u8) -> Result<u8, String> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(i as u8 + offset);
    }
    s.parse::<u8>()
        .map_err(|_| format!("{s:?} is not a number"))
}

fn field(
    text: &str,
    min: u8,
    max: u8,
    names: &[&str],
    offset: u8,
) -> Result<(BTreeSet<u8>, bool), String> {
    let mut out = BTreeSet::new();
    let restricted = !(text == "*" || text == "?");
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u8 = s.parse().map_err(|_| format!("bad step in {part:?}"))?;
                if step == 0 {
                    return Err(format!("zero step in {part:?}"));
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, names, offset)?, value(b, names, offset)?)
        } else {
            let v = value(range, names, offset)?;
            (v, if part.contains('/') { max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            return Err(format!("{part:?} is out of range {min}-{max}"));
        }
        let mut v = lo;
        while v <= hi {
            out.insert(v);
            match v.checked_add(step) {
                Some(n) => v = n,
                None => break,
            }
        }
    }
    Ok((out, restricted))
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let text = text.trim();
        let expanded = match text {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            t if t.starts_with("TZ=") || t.starts_with("CRON_TZ=") => {
                return Err(
                    "time zones in the schedule are not supported; use spec.timeZone".into(),
                );
            }
            t if t.starts_with('@') => return Err(format!("unknown macro {t:?}")),
            t => t,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!("expected 5 fields, found {}", fields.len()));
        }
        let (minutes, _) = field(fields[0], 0, 59, &[], 0)?;
        let (hours, _) = field(fields[1], 0, 23, &[], 0)?;
        let (days, days_restricted) = field(fields[2], 1, 31, &[], 0)?;
        let (months, _) = field(fields[3], 1, 12, &MONTHS, 1)?;
        let (mut weekdays, weekdays_restricted) = field(fields[4], 0, 7, &WEEKDAYS, 0)?;
        if weekdays.remove(&7) {
            weekdays.insert(0);
        }
        Ok(Schedule {
            minutes,
            hours,
            days,
            months,
            weekdays,
            days_restricted,
            weekdays_restricted,
        })
    }

    fn day_matches(&self, d: Date) -> bool {
        if !self.months.contains(&(d.month() as u8)) {
            return false;
        }
        let dom = self.days.contains(&(d.day() as u8));
        let dow = self
            .weekdays
            .contains(&(d.weekday().to_sunday_zero_offset() as u8));
        if self.days_restricted && self.weekdays_restricted {
            dom || dow
        } else {
            dom && dow
        }
    }

    /// The first scheduled time strictly after `after`, in `tz`; `None` if none within
    /// five years (an impossible date such as February 30).
    pub fn next_after(&self, after: jiff::Timestamp, tz: &TimeZone) -> Option<jiff::Timestamp> {
        let start = after.to_zoned(tz.clone());
        let mut day = start.date();
        for _ in 0..(366 * 5) {
            if self.day_matches(day) {
                for &h in &self.hours {
                    for &m in &self.minutes {
                        let Ok(t) = Time::new(h as i8, m as i8, 0, 0) else {
                            continue;
                        };
                        let Ok(z) = day.to_datetime(t).to_zoned(tz.clone()) else {
                            continue;
                        };
                        if z.timestamp() > after {
                            return Some(z.timestamp());
                        }
                    }
                }
            }
            day = day.tomorrow().ok()?;
        }
        None
    }
}

/// A time zone by IANA name (`None`: UTC).
pub fn time_zone(name: Option<&str>) -> Result<TimeZone, String> {
    match name {
        None | Some("") => Ok(TimeZone::UTC),
        Some(n) => TimeZone::get(n).map_err(|e| format!("unknown time zone {n:?}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_steps() {
        let s = Schedule::parse("*/15 9-17 * * MON-FRI").unwrap();
        let utc = TimeZone::UTC;
        // Saturday 2026-01-03 → next is Monday 09:00
        assert_eq!(
            s.next_after(ts("2026-01-03T10:00:00Z"), &utc),
            Some(ts("2026-01-05T09:00:00Z"))
        );
        assert_eq!(
            s.next_after(ts("2026-01-05T09:00:00Z"), &utc),
            Some(ts("2026-01-05T09:15:00Z"))
        );
        assert_eq!(
            s.next_after(ts("2026-01-05T17:45:00Z"), &utc),
            Some(ts("2026-01-06T09:00:00Z"))
        );
        let every = Schedule::parse("* * * * *").unwrap();
        assert_eq!(
            every.next_after(ts("2026-01-05T09:00:30Z"), &utc),
            Some(ts("2026-01-05T09:01:00Z"))
        );
        assert_eq!(
            Schedule::parse("@hourly").unwrap(),
            Schedule::parse("0 * * * *").unwrap()
        );
    }

    #[test]
    fn day_fields_or_when_both_restricted() {
        let s = Schedule::parse("0 0 13 * 5").unwrap(); // the 13th, or any Friday
        let utc = TimeZone::UTC;
        // 2026-02-06 is a Friday, before the 13th
        assert_eq!(
            s.next_after(ts("2026-02-01T00:00:00Z"), &utc),
            Some(ts("2026-02-06T00:00:00Z"))
        );
    }

    #[test]
    fn time_zones_and_errors() {
        let s = Schedule::parse("30 2 * * *").unwrap();
        let tz = time_zone(Some("Europe/Paris")).unwrap();
        // 02:30 Paris in January is 01:30 UTC
        assert_eq!(
            s.next_after(ts("2026-01-10T00:00:00Z"), &tz),
            Some(ts("2026-01-10T01:30:00Z"))
        );
        assert!(time_zone(Some("Not/AZone")).is_err());
        assert!(Schedule::parse("* * *").is_err());
        assert!(Schedule::parse("60 * * * *").is_err());
        assert!(Schedule::parse("*/0 * * * *").is_err());
        assert!(Schedule::parse("TZ=UTC * * * * *").is_err());
        assert_eq!(
            Schedule::parse("0 0 30 2 *")
                .unwrap()
                .next_after(ts("2026-01-01T00:00:00Z"), &TimeZone::UTC),
            None
        );
    }
}
