//! Content negotiation on `Accept-Encoding` (RFC 9110 §12.5.3).

/// The codings a file may be stored precompressed in, in the server's order of preference,
/// with the suffix of the file holding each.
pub const PRECOMPRESSED: [(&str, &str); 3] = [("br", ".br"), ("zstd", ".zst"), ("gzip", ".gz")];

/// The precompressed codings an `Accept-Encoding` value allows, best first: by the client's
/// weight, then by the server's preference among equal weights. A coding the client weighs
/// below `identity` is left out: it would rather have the file as it is.
pub fn acceptable_codings(accept_encoding: &[u8]) -> Vec<(&'static str, &'static str)> {
    let identity = explicit_weight(accept_encoding, "identity").unwrap_or(0);
    let mut acceptable: Vec<(u16, usize)> = PRECOMPRESSED
        .iter()
        .enumerate()
        .map(|(order, (coding, _))| (weight(accept_encoding, coding), order))
        .filter(|(weight, _)| *weight > 0 && *weight >= identity)
        .collect();
    acceptable.sort_by_key(|&(weight, order)| (std::cmp::Reverse(weight), order));
    acceptable
        .into_iter()
        .map(|(_, order)| PRECOMPRESSED[order])
        .collect()
}

/// The client's weight for `coding`, in thousandths: its own entry, else `*`'s, else 0.
fn weight(accept_encoding: &[u8], coding: &str) -> u16 {
    explicit_weight(accept_encoding, coding)
        .or_else(|| explicit_weight(accept_encoding, "*"))
        .unwrap_or(0)
}

/// The weight of the entry naming `coding` (`x-gzip` names gzip), if there is one.
fn explicit_weight(accept_encoding: &[u8], coding: &str) -> Option<u16> {
    accept_encoding.split(|&b| b == b',').find_map(|entry| {
        let mut parts = entry.split(|&b| b == b';');
        let name = parts.next().unwrap_or_default().trim_ascii();
        let names_it = name.eq_ignore_ascii_case(coding.as_bytes())
            || (coding == "gzip" && name.eq_ignore_ascii_case(b"x-gzip"));
        names_it.then(|| parts.find_map(quality).unwrap_or(1000))
    })
}

/// `q=0.5` → 500 (RFC 9110 §12.4.2); anything else is not a weight.
fn quality(parameter: &[u8]) -> Option<u16> {
    let value = parameter
        .trim_ascii()
        .strip_prefix(b"q=")
        .or_else(|| parameter.trim_ascii().strip_prefix(b"Q="))?;
    let text = std::str::from_utf8(value).ok()?;
    let q: f32 = text.parse().ok()?;
    (0.0..=1.0).contains(&q).then(|| (q * 1000.0).round() as u16)
}

#[cfg(test)]
mod tests {
    use super::acceptable_codings;

    fn names(accept_encoding: &str) -> Vec<&'static str> {
        acceptable_codings(accept_encoding.as_bytes())
            .into_iter()
            .map(|(coding, _)| coding)
            .collect()
    }

    #[test]
    fn weights_then_server_preference() {
        assert_eq!(names("gzip, br"), ["br", "gzip"]);
        assert_eq!(names("br;q=0.5, gzip"), ["gzip", "br"]);
        assert_eq!(names("br;q=0, gzip;q=0"), Vec::<&str>::new());
        assert_eq!(names("*"), ["br", "zstd", "gzip"]);
        assert_eq!(names("*;q=0.1, zstd"), ["zstd", "br", "gzip"]);
        assert_eq!(names("identity"), Vec::<&str>::new());
        assert_eq!(names("deflate"), Vec::<&str>::new());
        assert_eq!(names("x-gzip"), ["gzip"]);
        assert_eq!(names("gzip;q=bogus"), ["gzip"]);
        assert_eq!(names("GZIP ; Q=0.8 , br;q=0.9"), ["br", "gzip"]);
        assert_eq!(names("identity;q=0.5, gzip;q=0.4"), Vec::<&str>::new());
        assert_eq!(names("identity;q=0.5, gzip;q=0.6, br;q=0.4"), ["gzip"]);
    }
}
