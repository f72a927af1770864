//! Human units for tables: bytes as KiB/MiB, microseconds as ms/s, timestamps as ages, and the
//! small duration parser behind flags such as `--idle-in-transaction 60s`. Pure text in, text out.

use std::time::Duration;

/// `1536` → `1.5 KiB`; below 1 KiB the plain count with `B`.
pub fn bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n.abs() < 1024.0 {
        return format!("{n} B");
    }
    let mut value = n / 1024.0;
    let mut unit = UNITS[0];
    for next in &UNITS[1..] {
        if value.abs() < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

/// Microseconds as the shortest readable span: `850µs`, `12.3ms`, `4.20s`, `3m12s`, `2h05m`.
pub fn micros(us: f64) -> String {
    if us == 0.0 {
        return "0".to_owned();
    }
    if us.abs() < 1_000.0 {
        return format!("{us}µs");
    }
    if us.abs() < 1_000_000.0 {
        return format!("{:.1}ms", us / 1_000.0);
    }
    seconds(us / 1_000_000.0)
}

/// Seconds as `4.20s`, `3m12s`, `2h05m` or `3d04h`.
pub fn seconds(secs: f64) -> String {
    if secs.abs() < 60.0 {
        if secs.fract() == 0.0 {
            return format!("{secs}s");
        }
        return format!("{secs:.2}s");
    }
    // Whole seconds from here on: fractions no longer matter to a reader.
    let total = secs.round() as i64;
    let (d, h, m, s) = (
        total / 86_400,
        total % 86_400 / 3_600,
        total % 3_600 / 60,
        total % 60,
    );
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else {
        format!("{m}m{s:02}s")
    }
}

/// The age of a timestamp relative to `now` (Unix seconds): `3m12s ago`.
pub fn age(then: i64, now: i64) -> String {
    let secs = now - then;
    if secs < 0 {
        return "in the future".to_owned();
    }
    if secs < 60 {
        return format!("{secs}s ago");
    }
    format!("{} ago", seconds(secs as f64))
}

/// Parses PgBouncer's and PostgreSQL's timestamp text (`2026-11-26 14:43:24 UTC`, also
/// `2026-11-26T14:43:24Z`, `…+00`, `…+02:00`, with optional fractions) into Unix seconds.
/// Time zones other than UTC or a numeric offset give `None` (shown as the raw text).
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let text = text.trim();
    let (date, rest) = text.split_at_checked(10)?;
    let rest = rest.strip_prefix([' ', 'T'])?;
    let mut parts = date.split('-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    let (clock, zone) = rest.split_at_checked(8)?;
    let mut hms = clock.split(':');
    let h: i64 = hms.next()?.parse().ok()?;
    let m: i64 = hms.next()?.parse().ok()?;
    let s: i64 = hms.next()?.parse().ok()?;
    let zone = zone.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    let offset = zone_offset(zone.trim())?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3_600 + m * 60 + s - offset)
}

/// Offset east of UTC in seconds for `UTC`, `GMT`, `Z`, `+02`, `-0530`, `+05:30`.
fn zone_offset(zone: &str) -> Option<i64> {
    if matches!(zone, "UTC" | "GMT" | "Z" | "") {
        return Some(0);
    }
    let (sign, digits) = match zone.as_bytes().first()? {
        b'+' => (1, &zone[1..]),
        b'-' => (-1, &zone[1..]),
        _ => return None,
    };
    let digits: String = digits.chars().filter(|c| *c != ':').collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (h, m) = match digits.len() {
        2 => (digits.parse::<i64>().ok()?, 0),
        4 => (digits[..2].parse().ok()?, digits[2..].parse().ok()?),
        _ => return None,
    };
    Some(sign * (h * 3_600 + m * 60))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(month) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Now as Unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Parses `60`, `60s`, `1.5s`, `500ms`, `5m`, `1h`, `1h30m` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {text:?}: use e.g. 60, 60s, 500ms, 5m, 1h or 1h30m");
    let text = text.trim();
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|_| bad());
    }
    let mut total = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (number, tail) = rest.split_at(split);
        let value: f64 = number.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3_600.0,
            "d" => 86_400.0,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = tail;
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_use_binary_units() {
        assert_eq!(bytes(0.0), "0 B");
        assert_eq!(bytes(1023.0), "1023 B");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(bytes(205_600.0), "200.8 KiB");
        assert_eq!(bytes(3.0 * 1024.0 * 1024.0), "3.0 MiB");
    }

    #[test]
    fn micros_pick_a_readable_unit() {
        assert_eq!(micros(0.0), "0");
        assert_eq!(micros(716.0), "716µs");
        assert_eq!(micros(10_669.0), "10.7ms");
        assert_eq!(micros(4_200_000.0), "4.20s");
        assert_eq!(seconds(10.0), "10s");
        assert_eq!(micros(192_000_000.0), "3m12s");
        assert_eq!(micros(7_500_000_000.0), "2h05m");
    }

    #[test]
    fn ages_read_naturally() {
        assert_eq!(age(100, 105), "5s ago");
        assert_eq!(age(0, 192), "3m12s ago");
        assert_eq!(age(0, 90_000), "1d01h ago");
        assert_eq!(age(10, 5), "in the future");
    }

    #[test]
    fn timestamps_in_the_formats_we_meet() {
        let t = 1_795_703_604; // 2026-11-26 14:33:24 UTC
        assert_eq!(parse_timestamp("2026-11-26 14:33:24 UTC"), Some(t));
        assert_eq!(parse_timestamp("2026-11-26T14:33:24Z"), Some(t));
        assert_eq!(parse_timestamp("2026-11-26 14:33:24.123456+00"), Some(t));
        assert_eq!(parse_timestamp("2026-11-26 16:33:24+02:00"), Some(t));
        assert_eq!(parse_timestamp("1970-01-01 00:00:00 UTC"), Some(0));
        assert_eq!(parse_timestamp("2026-11-26 14:33:24 CET"), None);
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn durations_accept_units_and_bare_seconds() {
        assert_eq!(parse_duration("60"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3_600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1_500)));
        for bad in ["", "s", "5x", "-1", "1 h", "h1"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
