//! Money as integer fen (1/100 yuan). Amounts are read from their decimal text, never
//! through a float, so "0.10" + "0.20" is exactly 30 fen.

/// Largest single payment or refund accepted: 10 million yuan.
pub const MAX_ABS_FEN: i64 = 1_000_000_000;

/// Why an amount could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoneyError {
    /// Not a plain decimal with at most two fraction digits.
    Format,
    /// Beyond `MAX_ABS_FEN`.
    Range,
}

/// Parses `-?digits(.d{1,2})?` into fen.
pub fn parse_fen(text: &str) -> Result<i64, MoneyError> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int_part, frac_part) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    if int_part.is_empty() || !int_part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MoneyError::Format);
    }
    let frac = match frac_part {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 2 && f.bytes().all(|b| b.is_ascii_digit()) => {
            let v: i64 = f.parse().map_err(|_| MoneyError::Format)?;
            if f.len() == 1 {
                v * 10
            } else {
                v
            }
        }
        Some(_) => return Err(MoneyError::Format),
    };
    // Leading zeros are harmless; more than 12 significant digits cannot be in range.
    let trimmed = int_part.trim_start_matches('0');
    if trimmed.len() > 12 {
        return Err(MoneyError::Range);
    }
    let yuan: i64 = if trimmed.is_empty() {
        0
    } else {
        trimmed.parse().map_err(|_| MoneyError::Format)?
    };
    let fen = yuan * 100 + frac;
    if fen > MAX_ABS_FEN {
        return Err(MoneyError::Range);
    }
    Ok(if negative { -fen } else { fen })
}

/// Renders fen as a decimal string with two places (`-0.50`, `128.50`).
pub fn format_fen(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_fen() {
        assert_eq!(parse_fen("128.50"), Ok(12_850));
        assert_eq!(parse_fen("128.5"), Ok(12_850));
        assert_eq!(parse_fen("128"), Ok(12_800));
        assert_eq!(parse_fen("0.01"), Ok(1));
        assert_eq!(parse_fen("-3.20"), Ok(-320));
        assert_eq!(parse_fen("007.10"), Ok(710));
        assert_eq!(parse_fen("10000000.00"), Ok(MAX_ABS_FEN));
    }

    #[test]
    fn refuses_floats_and_junk() {
        for bad in [
            "", "-", ".5", "5.", "1.234", "1e3", "+1", "1,5", " 1", "1.-5", "--1", "0x10",
        ] {
            assert_eq!(parse_fen(bad), Err(MoneyError::Format), "{bad:?}");
        }
        assert_eq!(parse_fen("10000000.01"), Err(MoneyError::Range));
        assert_eq!(parse_fen("99999999999999999999999"), Err(MoneyError::Range));
    }

    #[test]
    fn formats_two_places() {
        assert_eq!(format_fen(12_850), "128.50");
        assert_eq!(format_fen(-50), "-0.50");
        assert_eq!(format_fen(0), "0.00");
        assert_eq!(format_fen(7), "0.07");
    }
}
