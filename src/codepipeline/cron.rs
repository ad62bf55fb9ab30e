//! The cron expressions of the DeploymentWindow rule: six fields and an optional seventh,
//! `seconds minutes hours day-of-month month day-of-week [year]`, as AWS documents them. A time
//! is inside the window when its minute matches every field (seconds are not looked at).
//!
//! Supported: `*`, `?`, lists, ranges, increments (`a/b`, `*/b`, `a-b/c`), month and day names,
//! `L` (the last day of the month), `nW` (the weekday nearest day n, in the same month), `LW`
//! (the last weekday of the month), `nL` (the last weekday n of the month) and `n#k` (the k-th
//! weekday n).

use chrono::{Datelike, Duration, NaiveDateTime, TimeZone, Timelike};

/// One field: the values it allows, and the special day forms.
#[derive(Debug, Clone, PartialEq)]
struct Field {
    values: Vec<u32>,
    any: bool,
    /// Day of month `L`.
    last_day: bool,
    /// Day of month `nW`: the weekday nearest day n.
    nearest_weekday: Vec<u32>,
    /// Day of month `LW`: the last weekday of the month.
    last_working_day: bool,
    /// Day of week `nL`: the last such weekday of the month.
    last_weekday: Vec<u32>,
    /// Day of week `n#k`.
    nth_weekday: Vec<(u32, u32)>,
}

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Cron {
    minutes: Field,
    hours: Field,
    days: Field,
    months: Field,
    weekdays: Field,
    years: Field,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn number(text: &str, names: &[&str], first: u32) -> Result<u32, String> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
        return Ok(i as u32 + first);
    }
    text.parse().map_err(|_| {
        format!(
            "'{text}' is not a number{}",
            if names.is_empty() { "" } else { " or a name" }
        )
    })
}

fn field(text: &str, (min, max): (u32, u32), names: &[&str], what: &str) -> Result<Field, String> {
    let mut f = Field {
        values: Vec::new(),
        any: false,
        last_day: false,
        nearest_weekday: Vec::new(),
        last_working_day: false,
        last_weekday: Vec::new(),
        nth_weekday: Vec::new(),
    };
    let first = if what == "month" { 1 } else { min };
    for part in text.split(',') {
        if part == "*" || part == "?" {
            f.any = true;
            continue;
        }
        if what == "day-of-month" && part == "LW" {
            f.last_working_day = true;
            continue;
        }
        if what == "day-of-month" {
            if let Some(day) = part.strip_suffix('W') {
                let day: u32 = day
                    .parse()
                    .ok()
                    .filter(|d| (1..=31).contains(d))
                    .ok_or_else(|| format!("'{part}' is not nW with n a day of the month"))?;
                f.nearest_weekday.push(day);
                continue;
            }
        }
        if part.contains('W') {
            return Err(format!(
                "'{part}' in the {what} field: W is for days of the month"
            ));
        }
        if what == "day-of-month" && part == "L" {
            f.last_day = true;
            continue;
        }
        if what == "day-of-week" {
            if let Some(day) = part.strip_suffix('L') {
                f.last_weekday.push(number(day, names, first)?);
                continue;
            }
            if let Some((day, nth)) = part.split_once('#') {
                let nth: u32 = nth.parse().map_err(|_| format!("'{part}' is not n#k"))?;
                f.nth_weekday.push((number(day, names, first)?, nth));
                continue;
            }
        }
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("'{part}' has no valid increment"))?,
            ),
            None => (part, 1),
        };
        let (from, to) = match range {
            "*" => (min, max),
            r => match r.split_once('-') {
                Some((a, b)) => (number(a, names, first)?, number(b, names, first)?),
                None => {
                    let a = number(r, names, first)?;
                    (a, if part.contains('/') { max } else { a })
                }
            },
        };
        if from < min || to > max || from > to {
            return Err(format!(
                "'{part}' is out of the {what} field's range {min}-{max}"
            ));
        }
        f.values.extend((from..=to).step_by(step as usize));
    }
    Ok(f)
}

impl Cron {
    /// Parses an expression of 6 or 7 fields.
    pub fn parse(text: &str) -> Result<Cron, String> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        if parts.len() != 6 && parts.len() != 7 {
            return Err(format!(
                "a cron expression has 6 or 7 fields, not {}",
                parts.len()
            ));
        }
        field(parts[0], (0, 59), &[], "seconds")?;
        Ok(Cron {
            minutes: field(parts[1], (0, 59), &[], "minutes")?,
            hours: field(parts[2], (0, 23), &[], "hours")?,
            days: field(parts[3], (1, 31), &[], "day-of-month")?,
            months: field(parts[4], (1, 12), &MONTHS, "month")?,
            weekdays: field(parts[5], (1, 7), &WEEKDAYS, "day-of-week")?,
            years: field(
                parts.get(6).copied().unwrap_or("*"),
                (1970, 2199),
                &[],
                "year",
            )?,
        })
    }

    /// Whether the minute of `t` (a local time) is inside the window.
    pub fn matches(&self, t: &NaiveDateTime) -> bool {
        let plain = |f: &Field, v: u32| f.any || f.values.contains(&v);
        let weekday = t.weekday().num_days_from_sunday() + 1;
        let last_of_month = {
            let next_month = if t.month() == 12 {
                chrono::NaiveDate::from_ymd_opt(t.year() + 1, 1, 1)
            } else {
                chrono::NaiveDate::from_ymd_opt(t.year(), t.month() + 1, 1)
            };
            next_month.map_or(31, |d| d.pred_opt().map_or(31, |p| p.day()))
        };
        // The weekday nearest `day` without leaving the month (Saturday gives the Friday before,
        // Sunday the Monday after, unless that is in another month).
        let date = t.date();
        let nearest = |day: u32| -> Option<u32> {
            let d = date.with_day(day)?;
            Some(match d.weekday() {
                chrono::Weekday::Sat if day == 1 => 3,
                chrono::Weekday::Sat => day - 1,
                chrono::Weekday::Sun if day == last_of_month => day - 2,
                chrono::Weekday::Sun => day + 1,
                _ => day,
            })
        };
        let day_ok = plain(&self.days, t.day())
            || (self.days.last_day && t.day() == last_of_month)
            || (self.days.last_working_day && nearest(last_of_month) == Some(t.day()))
            || self
                .days
                .nearest_weekday
                .iter()
                .any(|d| nearest(*d) == Some(t.day()));
        let weekday_ok = plain(&self.weekdays, weekday)
            || self
                .weekdays
                .last_weekday
                .iter()
                .any(|d| *d == weekday && t.day() + 7 > last_of_month)
            || self
                .weekdays
                .nth_weekday
                .iter()
                .any(|(d, n)| *d == weekday && (t.day() - 1) / 7 + 1 == *n);
        plain(&self.minutes, t.minute())
            && plain(&self.hours, t.hour())
            && day_ok
            && plain(&self.months, t.month())
            && weekday_ok
            && plain(&self.years, t.year() as u32)
    }

    /// Whether `at` (epoch seconds) is inside the window in `zone`.
    pub fn open_at<Z: TimeZone>(&self, zone: &Z, at: f64) -> bool {
        let utc = chrono::DateTime::from_timestamp(at as i64, 0).unwrap_or_default();
        self.matches(&utc.with_timezone(zone).naive_local())
    }

    /// When the window next opens after `at` (epoch seconds, to the minute), looking up to
    /// `horizon_days` ahead.
    pub fn next_open<Z: TimeZone>(&self, zone: &Z, at: f64, horizon_days: i64) -> Option<f64> {
        let start = chrono::DateTime::from_timestamp(at as i64 - at as i64 % 60 + 60, 0)?;
        let end = start + Duration::days(horizon_days);
        let mut t = start;
        while t < end {
            if self.matches(&t.with_timezone(zone).naive_local()) {
                return Some(t.timestamp() as f64);
            }
            t += Duration::minutes(1);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap()
    }

    #[test]
    fn windows_match_minutes_hours_days_and_names() {
        let business = Cron::parse("0 * 9-17 ? * MON-FRI *").unwrap();
        // 2026-12-02 is a Wednesday.
        assert!(business.matches(&at("2026-12-02 09:00")));
        assert!(business.matches(&at("2026-12-02 17:59")));
        assert!(!business.matches(&at("2026-12-02 18:00")));
        assert!(!business.matches(&at("2026-12-05 10:00")));
        let quarter = Cron::parse("* 0/15 * * * ?").unwrap();
        assert!(quarter.matches(&at("2026-12-02 10:45")));
        assert!(!quarter.matches(&at("2026-12-02 10:46")));
        let last = Cron::parse("* * * L * ? 2026").unwrap();
        assert!(last.matches(&at("2026-02-28 10:00")));
        assert!(!last.matches(&at("2026-02-27 10:00")));
        assert!(!last.matches(&at("2027-02-28 10:00")));
        let last_friday = Cron::parse("* * * ? * 6L").unwrap();
        assert!(last_friday.matches(&at("2026-12-25 10:00")));
        assert!(!last_friday.matches(&at("2026-12-18 10:00")));
        let second_monday = Cron::parse("* * * ? * MON#2").unwrap();
        assert!(second_monday.matches(&at("2026-12-14 10:00")));
        assert!(!second_monday.matches(&at("2026-12-07 10:00")));
        for bad in [
            "* * *",
            "* 60 * * * ?",
            "* * * 32W * ?",
            "* * * ? * 5W",
            "* * * ? * FUNDAY",
            "* */0 * * * ?",
        ] {
            assert!(Cron::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn w_names_the_nearest_weekday_in_the_month() {
        // 2026-08-15 is a Saturday: the Friday before; 2026-11-15 a Sunday: the Monday after.
        let fifteenth = Cron::parse("* * * 15W * ?").unwrap();
        assert!(fifteenth.matches(&at("2026-08-14 10:00")));
        assert!(!fifteenth.matches(&at("2026-08-15 10:00")));
        assert!(fifteenth.matches(&at("2026-11-16 10:00")));
        assert!(fifteenth.matches(&at("2026-12-15 10:00")));
        // 2026-08-01 is a Saturday: not the Friday in July but Monday the 3rd.
        let first = Cron::parse("* * * 1W * ?").unwrap();
        assert!(first.matches(&at("2026-08-03 10:00")));
        assert!(!first.matches(&at("2026-07-31 10:00")));
        // The last weekday: 2026-05-31 is a Sunday, so Friday the 29th.
        let last = Cron::parse("* * * LW * ?").unwrap();
        assert!(last.matches(&at("2026-05-29 10:00")));
        assert!(!last.matches(&at("2026-05-31 10:00")));
        assert!(last.matches(&at("2026-12-31 10:00")));
    }

    #[test]
    fn the_next_opening_is_found_in_the_zone() {
        let nine = Cron::parse("0 * 9 ? * * *").unwrap();
        let at = chrono::Utc
            .with_ymd_and_hms(2026, 12, 2, 10, 30, 0)
            .unwrap()
            .timestamp() as f64;
        let next = nine.next_open(&chrono::Utc, at, 2).unwrap();
        let expected = chrono::Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap();
        assert_eq!(next, expected.timestamp() as f64);
        let tokyo: chrono_tz::Tz = "Asia/Tokyo".parse().unwrap();
        // 10:30 UTC is 19:30 in Tokyo; 09:00 there is 00:00 UTC.
        let next = nine.next_open(&tokyo, at, 2).unwrap();
        let expected = chrono::Utc.with_ymd_and_hms(2026, 12, 3, 0, 0, 0).unwrap();
        assert_eq!(next, expected.timestamp() as f64);
        assert!(!nine.open_at(&tokyo, at));
    }
}
