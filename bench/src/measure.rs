//! Measurement helpers: resident memory, medians, a small deterministic shuffle.

/// Resident set size of this process in bytes (Linux `/proc/self/statm`).
pub fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    pages * 4096
}

pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

/// Fisher-Yates with xorshift, so runs are comparable.
pub fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

/// The value at each percentile `ps` (0-100) of `v` (sorted here), nearest rank.
pub fn percentiles(v: &mut [u64], ps: &[f64]) -> Vec<u64> {
    v.sort_unstable();
    ps.iter()
        .map(|p| {
            if v.is_empty() {
                return 0;
            }
            let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
            v[rank.clamp(1, v.len()) - 1]
        })
        .collect()
}

/// The value after `--name` on a command line, parsed: `Ok(None)` when the option is
/// absent, an error when it has no value or one that does not parse (a typo must not
/// quietly become the default).
pub fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Result<Option<T>, String> {
    let Some(i) = args.iter().position(|a| a == name) else { return Ok(None) };
    let v = args.get(i + 1).filter(|v| !v.starts_with("--")).ok_or_else(|| format!("{name} needs a value"))?;
    v.parse().map(Some).map_err(|_| format!("{name} {v:?}: not {}", kind::<T>()))
}

/// What a value of type `T` is, for error messages.
fn kind<T>() -> String {
    match std::any::type_name::<T>() {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number (0 or more)".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "core::net::ip_addr::Ipv4Addr" => "an IPv4 address".into(),
        "core::net::ip_addr::Ipv6Addr" => "an IPv6 address".into(),
        t => format!("a valid {}", t.rsplit("::").next().unwrap_or(t)),
    }
}

/// Checks that every word of a command line is a known option: one of `with_value`
/// (followed by its value) or of `flags`. A misspelt option is an error, not ignored.
pub fn known_options(args: &[String], with_value: &[&str], flags: &[&str]) -> Result<(), String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if with_value.contains(&a.as_str()) {
            it.next();
        } else if !flags.contains(&a.as_str()) {
            return Err(format!("unknown option {a:?}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut v: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(percentiles(&mut v, &[50.0, 99.0, 99.9, 100.0, 0.0]), vec![50, 99, 100, 100, 1]);
        assert_eq!(percentiles(&mut [], &[50.0]), vec![0]);
    }

    #[test]
    fn bad_option_values_are_errors_not_defaults() {
        let args: Vec<String> =
            ["--kills", "3", "--rate", "fast", "--to", "10.0.0.1", "--last"].map(String::from).into();
        assert_eq!(arg::<u32>(&args, "--kills"), Ok(Some(3)));
        assert_eq!(arg::<u32>(&args, "--absent"), Ok(None));
        assert_eq!(arg::<f64>(&args, "--rate"), Err("--rate \"fast\": not a number".into()));
        assert_eq!(arg::<u8>(&args, "--kills").unwrap(), Some(3));
        assert!(arg::<std::net::Ipv4Addr>(&args, "--to").unwrap().is_some());
        assert_eq!(arg::<std::net::Ipv6Addr>(&args, "--to"), Err("--to \"10.0.0.1\": not an IPv6 address".into()));
        assert_eq!(arg::<String>(&args, "--last"), Err("--last needs a value".into()));
        assert_eq!(arg::<String>(&["--a".into(), "--b".into()], "--a"), Err("--a needs a value".into()));
        assert!(known_options(&args, &["--kills", "--rate", "--to"], &["--last"]).is_ok());
        assert_eq!(known_options(&args, &["--kills", "--rate"], &["--last"]), Err("unknown option \"--to\"".into()));
    }
}
