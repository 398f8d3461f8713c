//! Axes' arithmetic: a linear map from values to pixels, rounded ("nice")
//! tick values, and calendar-aligned ticks with date labels for time.
//!
//! Every function here accepts any finite or non-finite input without
//! panicking and bounds its loops: a degenerate domain gets a usable one.

use chrono::{DateTime, Datelike, Months, NaiveDate, NaiveDateTime, Timelike};

use crate::format;

/// The most ticks any axis is given.
const MAX_TICKS: usize = 50;

/// A linear map from a domain of values to a range of pixels.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Linear {
    pub(crate) d0: f64,
    pub(crate) d1: f64,
    pub(crate) r0: f64,
    pub(crate) r1: f64,
}

impl Linear {
    pub(crate) fn map(&self, v: f64) -> f64 {
        let span = self.d1 - self.d0;
        let t = if span == 0.0 || !span.is_finite() {
            0.5
        } else {
            (v - self.d0) / span
        };
        let px = self.r0 + t * (self.r1 - self.r0);
        if px.is_finite() { px } else { self.r0 }
    }
}

/// Ticks on an axis: values and their labels.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ticks {
    pub(crate) values: Vec<f64>,
    pub(crate) labels: Vec<String>,
}

/// A domain widened to include `min` and `max` and ticks on round values
/// (1, 2 or 5 times a power of ten), about `count` of them.
pub(crate) fn nice(min: f64, max: f64, count: usize) -> (f64, f64, Ticks) {
    let (mut min, mut max) = if min.is_finite() && max.is_finite() && min <= max {
        (min, max)
    } else {
        (0.0, 1.0)
    };
    if min == max {
        let pad = if min == 0.0 { 1.0 } else { min.abs() * 0.1 };
        min -= pad;
        max += pad;
    }
    // Halved first so that a span near f64::MAX does not overflow.
    let span = max / 2.0 - min / 2.0;
    let raw = span * 2.0 / count.clamp(1, MAX_TICKS) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let lo = (min / step).floor() * step;
    let hi = (max / step).ceil() * step;
    if !(step.is_finite() && step > 0.0 && lo.is_finite() && hi.is_finite()) {
        let ticks = Ticks {
            values: vec![min, max],
            labels: vec![format::tick(min, span), format::tick(max, span)],
        };
        return (min, max, ticks);
    }
    let n = (((hi - lo) / step).round() as usize).min(MAX_TICKS);
    let values: Vec<f64> = (0..=n).map(|i| lo + i as f64 * step).collect();
    let labels = values.iter().map(|v| format::tick(*v, step)).collect();
    (lo, hi, Ticks { values, labels })
}

/// [`nice`] ticks for an axis `length` px long, about one per `spacing`
/// px, choosing among a few counts the one that wastes the least of the
/// axis (0 to 16.2k gets ticks to 18k, not 20k), with ticks at least 28 px
/// apart.
pub(crate) fn nice_within(min: f64, max: f64, length: f64, spacing: f64) -> (f64, f64, Ticks) {
    let base = ((length / spacing).floor() as usize).clamp(2, 12);
    let most = ((length / 28.0).floor() as usize).max(base);
    let mut best = nice(min, max, base);
    for count in base + 1..=(base + 3).min(most) {
        let candidate = nice(min, max, count);
        let span = |c: &(f64, f64, Ticks)| c.1 - c.0;
        if span(&candidate) < span(&best) * 0.95 {
            best = candidate;
        }
    }
    best
}

/// Round ticks inside `[min, max]`, for an axis whose domain is the data's
/// extent (a line's x).
pub(crate) fn inner(min: f64, max: f64, count: usize) -> Ticks {
    let (_, _, all) = nice(min, max, count);
    let slack = (max - min).abs() * 1e-9;
    let mut ticks = Ticks::default();
    for (v, l) in all.values.into_iter().zip(all.labels) {
        if v >= min - slack && v <= max + slack {
            ticks.values.push(v);
            ticks.labels.push(l);
        }
    }
    ticks
}

const SECOND: i64 = 1000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// A calendar step between time ticks.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// A fixed number of milliseconds, below a day.
    Fixed(i64),
    Days(i64),
    Week,
    Months(u32),
    Years(i32),
}

impl Step {
    fn approx_ms(self) -> f64 {
        match self {
            Step::Fixed(ms) => ms as f64,
            Step::Days(d) => (d * DAY) as f64,
            Step::Week => (7 * DAY) as f64,
            Step::Months(m) => f64::from(m) * 30.44 * DAY as f64,
            Step::Years(y) => f64::from(y) * 365.25 * DAY as f64,
        }
    }
}

const STEPS: [Step; 34] = [
    Step::Fixed(SECOND),
    Step::Fixed(2 * SECOND),
    Step::Fixed(5 * SECOND),
    Step::Fixed(10 * SECOND),
    Step::Fixed(15 * SECOND),
    Step::Fixed(30 * SECOND),
    Step::Fixed(MINUTE),
    Step::Fixed(2 * MINUTE),
    Step::Fixed(5 * MINUTE),
    Step::Fixed(10 * MINUTE),
    Step::Fixed(15 * MINUTE),
    Step::Fixed(30 * MINUTE),
    Step::Fixed(HOUR),
    Step::Fixed(2 * HOUR),
    Step::Fixed(3 * HOUR),
    Step::Fixed(6 * HOUR),
    Step::Fixed(12 * HOUR),
    Step::Days(1),
    Step::Days(2),
    Step::Week,
    Step::Months(1),
    Step::Months(2),
    Step::Months(3),
    Step::Months(6),
    Step::Years(1),
    Step::Years(2),
    Step::Years(5),
    Step::Years(10),
    Step::Years(20),
    Step::Years(50),
    Step::Years(100),
    Step::Years(200),
    Step::Years(500),
    Step::Years(1000),
];

fn naive(ms: i64) -> Option<NaiveDateTime> {
    DateTime::from_timestamp_millis(ms).map(|t| t.naive_utc())
}

fn millis(t: NaiveDateTime) -> i64 {
    t.and_utc().timestamp_millis()
}

/// Ticks for wall-clock milliseconds in `[min, max]`, on calendar
/// boundaries (hours, midnights, Mondays, months, years), at most about
/// `count` of them, labelled as briefly as their step allows. Spans under
/// two seconds, or outside the calendar's range, get numeric ticks.
pub(crate) fn time(min: f64, max: f64, count: usize) -> Ticks {
    let count = count.clamp(1, MAX_TICKS);
    let span = max - min;
    let step = STEPS
        .iter()
        .copied()
        .find(|s| span / s.approx_ms() <= count as f64);
    let (Some(step), Some(start), Some(_)) = (
        step.filter(|_| span >= 2.0 * SECOND as f64),
        naive(min.ceil() as i64),
        naive(max.floor() as i64),
    ) else {
        return sub_second(min, max, count);
    };
    let max_ms = max.floor() as i64;
    let mut times = Vec::new();
    let mut t = first_tick(start, step);
    while let Some(tick) = t {
        let ms = millis(tick);
        if ms > max_ms || times.len() > MAX_TICKS * 2 {
            break;
        }
        times.push(tick);
        t = next_tick(tick, step);
    }
    let mut ticks = Ticks::default();
    for (i, t) in times.iter().enumerate() {
        let prev = i.checked_sub(1).and_then(|p| times.get(p));
        ticks.values.push(millis(*t) as f64);
        ticks.labels.push(time_label(*t, step, prev));
    }
    ticks
}

/// Ticks for a span under two seconds: milliseconds as round numbers,
/// labelled as times with milliseconds.
fn sub_second(min: f64, max: f64, count: usize) -> Ticks {
    let mut ticks = inner(min, max, count);
    for (v, label) in ticks.values.iter().zip(ticks.labels.iter_mut()) {
        if let Some(t) = naive(*v as i64) {
            *label = t.format("%H:%M:%S%.3f").to_string();
        }
    }
    ticks
}

/// The first boundary of `step` at or after `start`.
fn first_tick(start: NaiveDateTime, step: Step) -> Option<NaiveDateTime> {
    let ms = millis(start);
    match step {
        Step::Fixed(size) => {
            naive(ms.div_euclid(size) * size + if ms % size == 0 { 0 } else { size })
        }
        Step::Days(k) => {
            let mut day = ms.div_euclid(DAY) + i64::from(ms.rem_euclid(DAY) != 0);
            day += (k - day.rem_euclid(k)) % k;
            naive(day * DAY)
        }
        Step::Week => {
            let mut day = ms.div_euclid(DAY) + i64::from(ms.rem_euclid(DAY) != 0);
            // Day 0 (1970-01-01) was a Thursday: Mondays have (day + 3) % 7 == 0.
            day += (7 - (day + 3).rem_euclid(7)) % 7;
            naive(day * DAY)
        }
        Step::Months(k) => {
            let mut month = NaiveDate::from_ymd_opt(start.year(), start.month(), 1)?;
            if month.and_hms_opt(0, 0, 0)? < start {
                month = month.checked_add_months(Months::new(1))?;
            }
            while month.month0() % k != 0 {
                month = month.checked_add_months(Months::new(1))?;
            }
            month.and_hms_opt(0, 0, 0)
        }
        Step::Years(k) => {
            let mut year = start.year();
            if NaiveDate::from_ymd_opt(year, 1, 1)?.and_hms_opt(0, 0, 0)? < start {
                year += 1;
            }
            year += (k - year.rem_euclid(k)) % k;
            NaiveDate::from_ymd_opt(year, 1, 1)?.and_hms_opt(0, 0, 0)
        }
    }
}

fn next_tick(t: NaiveDateTime, step: Step) -> Option<NaiveDateTime> {
    match step {
        Step::Fixed(size) => naive(millis(t).checked_add(size)?),
        Step::Days(k) => naive(millis(t).checked_add(k * DAY)?),
        Step::Week => naive(millis(t).checked_add(7 * DAY)?),
        Step::Months(k) => t.checked_add_months(Months::new(k)),
        Step::Years(k) => {
            NaiveDate::from_ymd_opt(t.year().checked_add(k)?, 1, 1)?.and_hms_opt(0, 0, 0)
        }
    }
}

/// A tick's label: the unit of its step, with the year or the date added
/// where the reader needs it (the first tick, a new year, a midnight).
fn time_label(t: NaiveDateTime, step: Step, prev: Option<&NaiveDateTime>) -> String {
    let first = prev.is_none();
    let new_year = prev.is_some_and(|p| p.year() != t.year());
    let midnight = t.num_seconds_from_midnight() == 0;
    let pattern = match step {
        Step::Years(_) => "%Y",
        Step::Months(_) if first || t.month() == 1 => "%b %Y",
        Step::Months(_) => "%b",
        Step::Days(_) | Step::Week if first || new_year => "%b %-d, %Y",
        Step::Days(_) | Step::Week => "%b %-d",
        Step::Fixed(_) if midnight => "%b %-d",
        Step::Fixed(size) if size < MINUTE && first => "%b %-d %H:%M:%S",
        Step::Fixed(size) if size < MINUTE => "%H:%M:%S",
        Step::Fixed(_) if first => "%b %-d %H:%M",
        Step::Fixed(_) => "%H:%M",
    };
    t.format(pattern).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> f64 {
        millis(NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()) as f64
    }

    #[test]
    fn nice_ticks_are_round_and_cover_the_data() {
        let (lo, hi, t) = nice(3.0, 97.0, 5);
        assert_eq!((lo, hi), (0.0, 100.0));
        assert_eq!(t.labels, ["0", "20", "40", "60", "80", "100"]);
        let (lo, hi, t) = nice(-1234.0, 56_789.0, 6);
        assert!(lo <= -1234.0 && hi >= 56_789.0);
        assert_eq!(t.labels.last().unwrap(), "60k");
        let (_, _, t) = nice(5.0, 5.0, 5);
        assert!(t.values.len() >= 2);
    }

    #[test]
    fn degenerate_domains_do_not_panic() {
        for (a, b) in [
            (f64::NAN, 1.0),
            (f64::NEG_INFINITY, f64::INFINITY),
            (-f64::MAX, f64::MAX),
            (1e-300, 2e-300),
            (2.0, 1.0),
        ] {
            let (lo, hi, t) = nice(a, b, 5);
            assert!(
                lo.is_finite() && hi.is_finite() && !t.values.is_empty(),
                "{a} {b}"
            );
            let _ = time(a, b, 5);
        }
    }

    #[test]
    fn time_ticks_fall_on_calendar_boundaries() {
        let t = time(ms("2024-01-15 00:00"), ms("2024-12-20 00:00"), 6);
        assert_eq!(t.labels, ["Mar 2024", "May", "Jul", "Sep", "Nov"]);
        let t = time(ms("2023-11-01 00:00"), ms("2024-02-01 00:00"), 5);
        assert_eq!(t.labels, ["Nov 2023", "Dec", "Jan 2024", "Feb"]);
        let t = time(ms("2024-03-05 09:10"), ms("2024-03-06 08:00"), 6);
        assert_eq!(t.labels[0], "Mar 5 12:00");
        assert!(t.labels.contains(&"Mar 6".to_owned()), "{:?}", t.labels);
        let t = time(ms("2024-03-01 00:00"), ms("2024-03-31 00:00"), 6);
        assert_eq!(t.labels[0], "Mar 4, 2024");
        assert_eq!(t.labels[1], "Mar 11");
        let t = time(ms("1990-01-01 00:00"), ms("2024-01-01 00:00"), 8);
        assert_eq!(
            t.labels,
            ["1990", "1995", "2000", "2005", "2010", "2015", "2020"]
        );
    }
}
