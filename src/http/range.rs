//! Range requests (RFC 9110 §14): which byte ranges of a representation to send.

use std::ops::Range;

/// More range specs than this in one field: not worth parsing, the field is ignored.
const MAX_SPECS: usize = 64;
/// More ranges than this left after coalescing: answered with the whole representation,
/// since many small parts cost more to send than the whole (RFC 9110 §14.2 allows this).
const MAX_PARTS: usize = 16;

/// What a `Range` field asks of a representation of a known size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ranges {
    /// No usable range: send the whole representation (200).
    Whole,
    /// These ranges, sorted, non-overlapping, non-adjacent, within the size (206).
    Parts(Vec<Range<u64>>),
    /// Well-formed, but no range overlaps the representation (416).
    Unsatisfiable,
}

/// Reads `Range: bytes=...` against a representation of `size` bytes.
pub(crate) fn parse(field: &[u8], size: u64) -> Ranges {
    let Some(specs) = strip_unit(field) else {
        return Ranges::Whole; // another unit, or not a range at all: ignored (§14.2)
    };
    let mut parts = Vec::new();
    for (count, spec) in specs.split(|&b| b == b',').enumerate() {
        let spec = spec.trim_ascii();
        if spec.is_empty() {
            continue; // RFC 9110 §5.6.1: empty list elements do not count
        }
        if count >= MAX_SPECS {
            return Ranges::Whole;
        }
        match parse_spec(spec, size) {
            Spec::Invalid => return Ranges::Whole,
            Spec::Unsatisfiable => {}
            Spec::Satisfiable(range) => parts.push(range),
        }
    }
    if parts.is_empty() {
        // A field with no valid spec at all (`bytes=`) is invalid, not unsatisfiable.
        return if specs.trim_ascii().is_empty() {
            Ranges::Whole
        } else {
            Ranges::Unsatisfiable
        };
    }
    let parts = coalesce(parts);
    if parts.len() > MAX_PARTS {
        return Ranges::Whole;
    }
    Ranges::Parts(parts)
}

fn strip_unit(field: &[u8]) -> Option<&[u8]> {
    let (unit, specs) = field.split_at_checked(6)?;
    unit.eq_ignore_ascii_case(b"bytes=").then_some(specs)
}

enum Spec {
    Satisfiable(Range<u64>),
    Unsatisfiable,
    Invalid,
}

/// `first-last`, `first-` or `-suffix` (RFC 9110 §14.1.2), clamped to the size.
fn parse_spec(spec: &[u8], size: u64) -> Spec {
    let Some(dash) = spec.iter().position(|&b| b == b'-') else {
        return Spec::Invalid;
    };
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    match (number(first), number(last)) {
        // -suffix: the last `suffix` bytes; a suffix longer than the file is the whole file.
        (None, Some(suffix)) if first.is_empty() => {
            if suffix == 0 || size == 0 {
                Spec::Unsatisfiable
            } else {
                Spec::Satisfiable(size.saturating_sub(suffix)..size)
            }
        }
        (Some(first), None) if last.is_empty() => within(first, u64::MAX, size),
        (Some(first), Some(last)) if first <= last => within(first, last, size),
        _ => Spec::Invalid,
    }
}

/// `first..=last` cut to the representation; unsatisfiable if it starts past the end (which
/// every range of an empty representation does).
fn within(first: u64, last: u64, size: u64) -> Spec {
    if first >= size {
        Spec::Unsatisfiable
    } else {
        Spec::Satisfiable(first..last.saturating_add(1).min(size))
    }
}

fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Merges overlapping or adjacent ranges, so no byte is sent twice, keeping the order the
/// client asked in (RFC 9110 §15.3.7.2): a merged range takes the place of its first part.
fn coalesce(parts: Vec<Range<u64>>) -> Vec<Range<u64>> {
    let mut kept: Vec<Range<u64>> = Vec::with_capacity(parts.len());
    for mut range in parts {
        let mut place = None;
        let mut index = 0;
        while index < kept.len() {
            let other = &kept[index];
            if range.start <= other.end && other.start <= range.end {
                range = range.start.min(other.start)..range.end.max(other.end);
                if place.is_none() {
                    place = Some(index);
                    index += 1;
                } else {
                    kept.remove(index);
                }
            } else {
                index += 1;
            }
        }
        match place {
            Some(place) => kept[place] = range,
            None => kept.push(range),
        }
    }
    kept
}

#[cfg(test)]
// A one-range `vec![0..10]` is exactly what these tests mean.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    fn check(field: &str, size: u64, expected: Ranges) {
        assert_eq!(
            parse(field.as_bytes(), size),
            expected,
            "{field:?} of {size} bytes"
        );
    }

    #[test]
    fn single_ranges() {
        check("bytes=0-99", 1000, Ranges::Parts(vec![0..100]));
        check("bytes=100-", 1000, Ranges::Parts(vec![100..1000]));
        check("bytes=-100", 1000, Ranges::Parts(vec![900..1000]));
        check("bytes=10-999999", 1000, Ranges::Parts(vec![10..1000]));
        check("bytes=-5000", 1000, Ranges::Parts(vec![0..1000]));
        check("BYTES=0-0", 1000, Ranges::Parts(vec![0..1]));
        check("bytes= 0-0 ,", 1000, Ranges::Parts(vec![0..1]));
    }

    #[test]
    fn unsatisfiable_ranges() {
        check("bytes=1000-", 1000, Ranges::Unsatisfiable);
        check("bytes=1000-2000", 1000, Ranges::Unsatisfiable);
        check("bytes=-0", 1000, Ranges::Unsatisfiable);
        check("bytes=0-0", 0, Ranges::Unsatisfiable);
        check("bytes=-1", 0, Ranges::Unsatisfiable);
    }

    #[test]
    fn invalid_ranges_are_ignored() {
        for field in [
            "bytes=abc",
            "bytes=5-2",
            "bytes=",
            "items=0-1",
            "bytes 0-1",
            "bytes=1-2-3",
            "bytes=--1",
            "bytes=0x1-2",
            "b",
        ] {
            check(field, 1000, Ranges::Whole);
        }
    }

    #[test]
    fn several_ranges_keep_their_order_and_are_coalesced() {
        check("bytes=20-29,0-9", 1000, Ranges::Parts(vec![20..30, 0..10]));
        check(
            "bytes=0-0,-1,100-149",
            810,
            Ranges::Parts(vec![0..1, 809..810, 100..150]),
        );
        check("bytes=50-59,0-9,8-52", 1000, Ranges::Parts(vec![0..60]));
        check("bytes=0-", 0, Ranges::Unsatisfiable);
        check("bytes=0-9,5-14", 1000, Ranges::Parts(vec![0..15]));
        check("bytes=0-9,10-19", 1000, Ranges::Parts(vec![0..20]));
        check("bytes=0-9,2000-3000", 1000, Ranges::Parts(vec![0..10]));
    }

    #[test]
    fn abusive_sets_get_the_whole() {
        let many_small: Vec<String> = (0..40).map(|i| format!("{0}-{0}", i * 2)).collect();
        check(&format!("bytes={}", many_small.join(",")), 1000, Ranges::Whole);
        let too_many: Vec<String> = (0..65).map(|_| "0-0".to_string()).collect();
        check(&format!("bytes={}", too_many.join(",")), 1000, Ranges::Whole);
        let overlapping: Vec<String> = (0..30).map(|i| format!("{i}-500")).collect();
        check(
            &format!("bytes={}", overlapping.join(",")),
            1000,
            Ranges::Parts(vec![0..501]),
        );
    }
}
