//! Numbers as people read them: thousands separators in values, short
//! suffixes on axes (1.2k, 3.4M, 5B), and the counter's format patterns.
//!
//! Suffixes are k, M, B and T: "B" rather than SI's "G", because readers of
//! business charts take G for gigabytes.

use crate::error::{ChartError, Result};

/// Beyond this, plain digits stop being readable: scientific notation.
const HUGE: f64 = 1e15;

const SUFFIXES: [(f64, &str); 4] = [(1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")];

/// `value` with `decimals` decimals and, when `grouped`, a comma between
/// thousands: `1,234,567.89`.
pub(crate) fn fixed(value: f64, decimals: usize, grouped: bool) -> String {
    if !value.is_finite() {
        return non_finite(value);
    }
    if value.abs() >= HUGE {
        return format!("{value:.3e}");
    }
    let digits = format!("{:.*}", decimals.min(12), value.abs());
    let (int, frac) = digits.split_once('.').unwrap_or((&digits, ""));
    let mut out = String::with_capacity(digits.len() + 8);
    // "-0.00" is zero.
    if value < 0.0 && digits.bytes().any(|b| b.is_ascii_digit() && b != b'0') {
        out.push('-');
    }
    for (i, c) in int.chars().enumerate() {
        if grouped && i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

fn non_finite(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value > 0.0 {
        "∞".to_owned()
    } else {
        "-∞".to_owned()
    }
}

fn trim_zeros(mut s: String) -> String {
    if s.contains('.') && !s.contains('e') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    s
}

/// A number as a `data-*` attribute: exact and short, with an exponent only
/// for very large or very small magnitudes.
pub(crate) fn data(v: f64) -> String {
    let a = v.abs();
    if v == v.trunc() && a < HUGE {
        format!("{}", v as i64)
    } else if (1e-5..HUGE).contains(&a) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

/// A value in a legend, a cell or a counter, with no format given: grouped,
/// two decimals at most for values from 1 up, four significant digits below.
pub(crate) fn value(v: f64) -> String {
    let a = v.abs();
    let decimals = if a >= 1.0 || a == 0.0 {
        2
    } else {
        // 0.012345 -> 0.01235
        (3.0 - a.log10().floor()).clamp(2.0, 12.0) as usize
    };
    trim_zeros(fixed(v, decimals, true))
}

/// How many decimals write `step` exactly (up to 10).
fn decimals_for(step: f64) -> usize {
    let step = step.abs();
    if !step.is_finite() || step == 0.0 {
        return 0;
    }
    (0..10)
        .find(|&d| {
            let scaled = step * 10f64.powi(d as i32);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
        })
        .unwrap_or(10)
}

/// An axis tick: short, with a suffix from a thousand up, and as many
/// decimals as the ticks' `step` needs to tell neighbours apart.
pub(crate) fn tick(v: f64, step: f64) -> String {
    let a = v.abs();
    if a < step.abs() * 1e-9 || a == 0.0 {
        return "0".to_owned();
    }
    if a >= HUGE {
        return format!("{v:.1e}");
    }
    let (unit, suffix) = SUFFIXES
        .iter()
        .copied()
        .find(|(unit, _)| a >= *unit)
        .unwrap_or((1.0, ""));
    let mut out = trim_zeros(fixed(v / unit, decimals_for(step / unit), false));
    out.push_str(suffix);
    out
}

/// A number pattern for the counter, in the spirit of spreadsheet and
/// numeral.js formats: text around a pattern of `0`, `#`, `,` and `.`,
/// then `%` or `a`.
///
/// | pattern  | 1234.567   | 0.256   |
/// |----------|------------|---------|
/// | `0`      | `1235`     | `0`     |
/// | `0,0`    | `1,235`    | `0`     |
/// | `0,0.00` | `1,234.57` | `0.26`  |
/// | `0.0#`   | `1234.57`  | `0.26`  |
/// | `0.0%`   | `123456.7%`| `25.6%` |
/// | `$0,0`   | `$1,235`   | `$0`    |
/// | `0.0a`   | `1.2k`     | `0.3`   |
///
/// `0` after the point is a decimal always written, `#` one written when
/// not zero; `,` groups thousands; `%` multiplies by 100; `a` shortens
/// with k, M, B, T. Text before and after is kept (`0.0 ms`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberFormat {
    prefix: String,
    suffix: String,
    grouped: bool,
    /// Decimals always written.
    min_decimals: usize,
    /// Decimals written when not zero.
    max_decimals: usize,
    percent: bool,
    abbreviate: bool,
}

impl NumberFormat {
    /// Reads a pattern.
    ///
    /// # Errors
    /// [`ChartError::InvalidOptions`] on `options.format` when the pattern
    /// has no `0` or `#`, more than one point, a comma after the point, or
    /// more than 12 decimals.
    pub fn parse(pattern: &str) -> Result<NumberFormat> {
        let invalid = |why: &str| ChartError::InvalidOptions {
            field: "options.format".to_owned(),
            message: format!(
                "format {pattern:?} {why}; write it like 0,0.00, 0.0%, $0,0 or 0.0a (text before and after is kept)"
            ),
        };
        let start = pattern
            .find(['0', '#'])
            .ok_or_else(|| invalid("has no number pattern of 0 and #"))?;
        let body_len = pattern[start..]
            .find(|c: char| !matches!(c, '0' | '#' | ',' | '.'))
            .unwrap_or(pattern.len() - start);
        let body = &pattern[start..start + body_len];
        let mut rest = &pattern[start + body_len..];
        let (int, frac) = match body.split_once('.') {
            Some((int, frac)) => (int, frac),
            None => (body, ""),
        };
        if frac.contains(['.', ',']) {
            return Err(invalid("has a second point or a comma after the point"));
        }
        let min_decimals = frac.chars().take_while(|c| *c == '0').count();
        if frac[min_decimals..].contains('0') {
            return Err(invalid("has a 0 after a # in its decimals"));
        }
        if frac.len() > 12 {
            return Err(invalid("has more than 12 decimals"));
        }
        let (mut percent, mut abbreviate) = (false, false);
        if let Some(r) = rest.strip_prefix('%') {
            percent = true;
            rest = r;
        } else if let Some(r) = rest.strip_prefix('a') {
            abbreviate = true;
            rest = r;
        }
        Ok(NumberFormat {
            prefix: pattern[..start].to_owned(),
            suffix: rest.to_owned(),
            grouped: int.contains(','),
            min_decimals,
            max_decimals: frac.len(),
            percent,
            abbreviate,
        })
    }

    /// `value` written in this format.
    pub fn format(&self, value: f64) -> String {
        let mut v = value;
        let mut unit = "";
        if self.percent {
            v *= 100.0;
        }
        if self.abbreviate
            && let Some((size, suffix)) = SUFFIXES.iter().find(|(size, _)| v.abs() >= *size)
        {
            v /= size;
            unit = suffix;
        }
        let mut digits = fixed(v, self.max_decimals, self.grouped);
        if self.max_decimals > self.min_decimals && !digits.contains('e') {
            let keep = self.max_decimals - self.min_decimals;
            for _ in 0..keep {
                if digits.ends_with('0') {
                    digits.pop();
                }
            }
            if digits.ends_with('.') {
                digits.pop();
            }
        }
        // The sign goes before the prefix: -$1,234.
        let mut out = String::new();
        if let Some(unsigned) = digits.strip_prefix('-') {
            out.push('-');
            digits = unsigned.to_owned();
        }
        out.push_str(&self.prefix);
        out.push_str(&digits);
        out.push_str(unit);
        if self.percent {
            out.push('%');
        }
        out.push_str(&self.suffix);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_grouped_by_thousands() {
        assert_eq!(value(1_234_567.891), "1,234,567.89");
        assert_eq!(value(-1234.0), "-1,234");
        assert_eq!(value(0.012345), "0.01235");
        assert_eq!(value(0.0), "0");
        assert_eq!(fixed(-0.001, 2, true), "0.00");
        assert_eq!(value(f64::NAN), "NaN");
        assert_eq!(value(1e20), "1.000e20");
    }

    #[test]
    fn ticks_are_short_and_distinct() {
        let labels = |ticks: &[f64], step| ticks.iter().map(|t| tick(*t, step)).collect::<Vec<_>>();
        assert_eq!(
            labels(&[0.0, 250_000.0, 1_000_000.0, 1_250_000.0], 250_000.0),
            ["0", "250k", "1M", "1.25M"]
        );
        assert_eq!(labels(&[0.0, 0.2, 0.4, 1.0], 0.2), ["0", "0.2", "0.4", "1"]);
        assert_eq!(
            labels(&[-2000.0, 3.4e6, 5e9], 1000.0),
            ["-2k", "3.4M", "5B"]
        );
        assert_eq!(tick(0.30000000000000004, 0.1), "0.3");
    }

    #[test]
    fn counter_formats_follow_the_pattern() {
        let f = |p: &str, v: f64| NumberFormat::parse(p).unwrap().format(v);
        assert_eq!(f("0", 1234.567), "1235");
        assert_eq!(f("0,0", 1234.567), "1,235");
        assert_eq!(f("0,0.00", 1234.567), "1,234.57");
        assert_eq!(f("0.0#", 1234.5), "1234.5");
        assert_eq!(f("0.0#", 1234.567), "1234.57");
        assert_eq!(f("0.0%", 0.256), "25.6%");
        assert_eq!(f("$0,0", -1234.4), "-$1,234");
        assert_eq!(f("0.0a ms", 1234.0), "1.2k ms");
        assert!(NumberFormat::parse("{value}").is_err());
        assert!(NumberFormat::parse("0.0.0").is_err());
        assert!(NumberFormat::parse("0.#0").is_err());
    }
}
