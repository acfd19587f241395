//! Duration flags in Go's `time.ParseDuration` syntax, as kubed (a Go program) took them:
//! `90s`, `5m`, `1h30m`, `1.5h`, `300ms`, `250us`/`250µs`, `10ns`, each number with a unit.
//! Each flag has its own range, so an absurd value is refused at start instead of wrapping or
//! overflowing later (a tokio interval of `u64::MAX` seconds panics on its first tick).
//!
//! Hand-written: `humantime` has no fractions (`1.5h`), and `go-parse-duration` (the Go port)
//! indexes characters by byte offset and panics on input such as `1µs`.
use std::time::Duration;

/// Nanoseconds per unit, longest unit names first where one is a prefix of another.
const UNITS: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Anything longer is refused before a range check can even be made (about 584 years).
const MAX_NANOS: u128 = u64::MAX as u128;

/// Parses `s` as Go does (no sign: a negative duration is never meaningful for a flag here).
pub fn parse(s: &str) -> Result<Duration, String> {
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err("empty duration (examples: 30s, 5m, 1h30m, 1.5h, 300ms)".into());
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let (nanos, tail) = component(rest).map_err(|why| format!("duration {s:?}: {why}"))?;
        total = total.saturating_add(nanos);
        if total > MAX_NANOS {
            return Err(format!("duration {s:?} is too large"));
        }
        rest = tail;
    }
    let secs = u64::try_from(total / 1_000_000_000).unwrap_or(u64::MAX);
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// One `<number>[.<fraction>]<unit>` at the start of `s`: its nanoseconds and the rest.
fn component(s: &str) -> Result<(u128, &str), String> {
    let int_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (int, after) = s.split_at(int_end);
    let (frac, after) = match after.strip_prefix('.') {
        Some(f) => {
            let end = f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len());
            f.split_at(end)
        }
        None => ("", after),
    };
    if int.is_empty() && frac.is_empty() {
        return Err("expected a number before each unit".into());
    }
    let unit_end = after
        .find(|c: char| c.is_ascii_digit() || c == '.')
        .unwrap_or(after.len());
    let (unit, rest) = after.split_at(unit_end);
    let Some(&(_, per)) = UNITS.iter().find(|(u, _)| *u == unit) else {
        return Err(match unit {
            "" => "a number lacks its unit (ns, us, ms, s, m, h)".into(),
            u => format!("unknown unit {u:?} (ns, us, ms, s, m, h)"),
        });
    };
    // Digits beyond what u128 holds are too large whatever the unit.
    let whole: u128 = match int {
        "" => 0,
        digits => digits.parse().map_err(|_| "a number is too large")?,
    };
    let mut nanos = whole.checked_mul(per).ok_or("a number is too large")?;
    // The fraction, to the nanosecond (further digits are dropped, as Go does).
    let mut scale = per;
    for d in frac.bytes() {
        scale /= 10;
        if scale == 0 {
            break;
        }
        nanos = nanos.saturating_add(u128::from(d - b'0') * scale);
    }
    Ok((nanos, rest))
}

/// A parser for a flag that must lie in `min..=max` (both named in the message).
pub fn within(
    min: Duration,
    max: Duration,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |s: &str| {
        let d = parse(s)?;
        if d < min || d > max {
            return Err(format!(
                "{s:?} is out of range: between {} and {}",
                show(min),
                show(max)
            ));
        }
        Ok(d)
    }
}

/// `--resync-period`: at least a second (a tighter loop only burns requests), at most a day.
pub fn resync_period(s: &str) -> Result<Duration, String> {
    within(Duration::from_secs(1), Duration::from_secs(86_400))(s)
}

/// `--lease-duration`: whole seconds on the Lease; at least 2 s (renewals come a third before
/// expiry), at most an hour (a standby would wait that long after a crash).
pub fn lease_duration(s: &str) -> Result<Duration, String> {
    within(Duration::from_secs(2), Duration::from_secs(3_600))(s)
}

/// `--unreachable-after`: at least a second, at most a day.
pub fn unreachable_after(s: &str) -> Result<Duration, String> {
    within(Duration::from_secs(1), Duration::from_secs(86_400))(s)
}

/// `--exec-timeout`: at least a second, at most 10 minutes (a request waits that long at worst).
pub fn exec_timeout(s: &str) -> Result<Duration, String> {
    within(Duration::from_secs(1), Duration::from_secs(600))(s)
}

/// A duration as a flag would be written: `2s`, `24h`, `1m30s`, `300ms`.
fn show(d: Duration) -> String {
    let (h, m, s, ms) = (
        d.as_secs() / 3600,
        d.as_secs() / 60 % 60,
        d.as_secs() % 60,
        d.subsec_millis(),
    );
    let mut out = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s"), (u64::from(ms), "ms")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if out.is_empty() { "0s".into() } else { out }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn go_forms() {
        let ms = |s: &str| parse(s).map(|d| d.as_nanos());
        let table: &[(&str, Option<u128>)] = &[
            ("30s", Some(30_000_000_000)),
            ("5m", Some(300_000_000_000)),
            ("1h30m", Some(5_400_000_000_000)),
            ("1.5h", Some(5_400_000_000_000)),
            ("300ms", Some(300_000_000)),
            (".5s", Some(500_000_000)),
            ("1.s", Some(1_000_000_000)),
            ("250us", Some(250_000)),
            ("250µs", Some(250_000)),
            ("10ns", Some(10)),
            ("1m0.000000001s", Some(60_000_000_001)),
            ("0.0000000001s", Some(0)),
            ("0", Some(0)),
            ("0s", Some(0)),
            ("10", None),
            ("", None),
            (" ", None),
            ("5x", None),
            ("m", None),
            (".s", None),
            ("1.5", None),
            ("-5s", None),
            ("+5s", None),
            ("1µ", None),
            ("µ1s", None),
            ("99999999999999999h", None),
            ("600000000000h", None),
            ("999999999999999999999999999999999999999999s", None),
        ];
        for (s, want) in table {
            assert_eq!(ms(s).ok(), *want, "{s:?}: {:?}", ms(s));
        }
    }

    #[test]
    fn ranges_name_both_ends() {
        assert_eq!(resync_period("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(lease_duration("15s"), Ok(Duration::from_secs(15)));
        let e = lease_duration("99999999999999999h").unwrap_err();
        assert!(e.contains("too large"), "{e}");
        let e = lease_duration("1s").unwrap_err();
        assert!(e.contains("between 2s and 1h"), "{e}");
        let e = resync_period("300ms").unwrap_err();
        assert!(e.contains("between 1s and 24h"), "{e}");
        assert!(unreachable_after("0s").is_err());
        assert_eq!(show(Duration::from_millis(90_300)), "1m30s300ms");
    }
}
