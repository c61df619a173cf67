//! Shared pieces of bank1 and bank2.
//!
//! - [`money`]: exact amounts (`Amount`, integer minor units) and their decimal-string form.
//! - [`faults`]: the live fault switch behind `/admin/faults`.
//! - [`ids`]: validated identifiers (`AccountNo`, `TxNo`).
//! - [`message`]: the transfer message that travels on `topic_txmsg` (versioned JSON).
//! - [`api_error`]: the `{"error":{"code","message"}}` body every HTTP error uses, and the
//!   `AppJson` extractor that turns JSON rejections into that shape.
//! - [`error`]: the services' error enum (`Client`, `Unavailable`, `Sqlx`, `Other`).
//! - [`db`]: connecting to SQLite or MySQL-protocol databases through one `AnyPool`.
//! - [`mq`]: the RocketMQ client runtime, sized for this workload.
//! - [`telemetry`]: tracing set-up (once per process).
//! - [`shutdown`]: the Ctrl-C / SIGTERM future services stop on.

pub mod api_error;
pub mod db;
pub mod error;
pub mod faults;
pub mod ids;
pub mod message;
pub mod money;
pub mod mq;
pub mod shutdown;
pub mod telemetry;

/// Milliseconds since the Unix epoch; the one clock every table uses.
pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

/// RFC 3339 (UTC, millisecond precision) for a millisecond timestamp, as the APIs show times.
pub fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant), proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
}

#[cfg(test)]
mod tests {
    use super::format_ms;

    #[test]
    fn formats_epoch_and_a_known_instant() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(1_795_305_600_123), "2026-11-22T00:00:00.123Z");
        assert_eq!(format_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}

/// Parses a duration like `30s`, `5m`, `1h`, `250ms`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("{s:?} is not a duration like 30s, 5m, 250ms"))?;
    let ms = match unit {
        "" | "s" => n.checked_mul(1000),
        "ms" => Some(n),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    }
    .ok_or_else(|| format!("{s:?} is not a duration like 30s, 5m, 250ms"))?;
    Ok(std::time::Duration::from_millis(ms))
}

#[cfg(test)]
mod duration_tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("7x").is_err());
        assert!(parse_duration("").is_err());
    }
}
