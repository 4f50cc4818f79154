//! Scalar argument parsers with nginx's rules (`ngx_parse_size`, `ngx_parse_time`,
//! `ngx_conf_set_flag_slot`), for the typed model.

/// An nginx size: digits with an optional `k`/`K`, `m`/`M` or `g`/`G` suffix (powers of 1024):
/// `"8"`, `"2k"`, `"1m"`, `"1g"`. `None` on anything else or on overflow.
pub fn parse_size(s: &str) -> Option<u64> {
    let (digits, scale) = match s.as_bytes().last()? {
        b'k' | b'K' => (s.get(..s.len() - 1)?, 1u64 << 10),
        b'm' | b'M' => (s.get(..s.len() - 1)?, 1 << 20),
        b'g' | b'G' => (s.get(..s.len() - 1)?, 1 << 30),
        _ => (s, 1),
    };
    parse_digits(digits)?.checked_mul(scale)
}

fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Units of `ngx_parse_time`, largest first, as (suffix, seconds).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Start,
    Year,
    Month,
    Week,
    Day,
    Hour,
    Min,
    Sec,
    Msec,
}

/// Parse an nginx time into milliseconds: components with units in decreasing order, `ms`,
/// `s`, `m`, `h`, `d`, `w` (`"500ms"`, `"1m30s"`, `"1h 30m"`); a bare number (or a trailing
/// bare number) is seconds: `"60"` = 60 000 ms. `y` and `M` are not allowed here, as in
/// nginx for millisecond values. `None` on anything else or on overflow.
pub fn parse_time_ms(s: &str) -> Option<u64> {
    parse_time(s, false)
}

/// Parse an nginx time into seconds (for directives nginx reads in seconds, like `expires`):
/// units `y` (365d), `M` (30d), `w`, `d`, `h`, `m`, `s`; a bare number is seconds; no `ms`.
pub fn parse_time_secs(s: &str) -> Option<u64> {
    parse_time(s, true)
}

fn parse_time(s: &str, is_sec: bool) -> Option<u64> {
    let b = s.as_bytes();
    let mut step = if is_sec { Step::Start } else { Step::Month };
    let mut value: u64 = 0;
    let mut total: u64 = 0;
    let mut valid = false;
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        i += 1;
        if c.is_ascii_digit() {
            value = value.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
            valid = true;
            continue;
        }
        let (next, secs) = match c {
            b'y' if step == Step::Start => (Step::Year, 365 * 86_400),
            b'M' if step < Step::Month => (Step::Month, 30 * 86_400),
            b'w' if step < Step::Week => (Step::Week, 7 * 86_400),
            b'd' if step < Step::Day => (Step::Day, 86_400),
            b'h' if step < Step::Hour => (Step::Hour, 3_600),
            b'm' if b.get(i) == Some(&b's') => {
                if is_sec || step >= Step::Msec {
                    return None;
                }
                i += 1;
                (Step::Msec, 0)
            }
            b'm' if step < Step::Min => (Step::Min, 60),
            b's' if step < Step::Sec => (Step::Sec, 1),
            _ => return None,
        };
        step = next;
        let scaled = if next == Step::Msec {
            value
        } else if is_sec {
            value.checked_mul(secs)?
        } else {
            value.checked_mul(secs * 1000)?
        };
        total = total.checked_add(scaled)?;
        value = 0;
        while b.get(i) == Some(&b' ') {
            i += 1;
        }
    }
    if !valid {
        return None;
    }
    let rest = if is_sec {
        value
    } else {
        value.checked_mul(1000)?
    };
    total.checked_add(rest)
}

/// `on` → `true`, `off` → `false` (case-insensitive, as nginx).
pub fn parse_flag(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("on") {
        Some(true)
    } else if s.eq_ignore_ascii_case("off") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("8"), Some(8));
        assert_eq!(parse_size("2k"), Some(2048));
        assert_eq!(parse_size("2K"), Some(2048));
        assert_eq!(parse_size("1m"), Some(1 << 20));
        assert_eq!(parse_size("1M"), Some(1 << 20));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("0"), Some(0));
        for bad in [
            "",
            "k",
            "-1",
            "1.5k",
            "1kb",
            "1 k",
            "x",
            "99999999999999999999",
        ] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        assert_eq!(parse_size("99999999999g"), None);
    }

    #[test]
    fn times() {
        assert_eq!(parse_time_ms("60"), Some(60_000));
        assert_eq!(parse_time_ms("1s"), Some(1_000));
        assert_eq!(parse_time_ms("500ms"), Some(500));
        assert_eq!(parse_time_ms("1m"), Some(60_000));
        assert_eq!(parse_time_ms("1h"), Some(3_600_000));
        assert_eq!(parse_time_ms("1d"), Some(86_400_000));
        assert_eq!(parse_time_ms("1w"), Some(7 * 86_400_000));
        assert_eq!(parse_time_ms("1m30s"), Some(90_000));
        assert_eq!(parse_time_ms("1h 30m"), Some(5_400_000));
        assert_eq!(parse_time_ms("1s500ms"), Some(1_500));
        assert_eq!(parse_time_ms("1m30"), Some(90_000));
        assert_eq!(parse_time_ms("0"), Some(0));
        for bad in [
            "", "s", "1x", "30s1m", "1s1s", "1y", "1M", "-1", "1ms1s", "1.5s",
        ] {
            assert_eq!(parse_time_ms(bad), None, "{bad}");
        }
        assert_eq!(parse_time_secs("30d"), Some(30 * 86_400));
        assert_eq!(parse_time_secs("1y"), Some(365 * 86_400));
        assert_eq!(parse_time_secs("1M"), Some(30 * 86_400));
        assert_eq!(parse_time_secs("90"), Some(90));
        assert_eq!(parse_time_secs("500ms"), None);
    }

    #[test]
    fn flags() {
        assert_eq!(parse_flag("on"), Some(true));
        assert_eq!(parse_flag("OFF"), Some(false));
        assert_eq!(parse_flag("yes"), None);
    }
}
