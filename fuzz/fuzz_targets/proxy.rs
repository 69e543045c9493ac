//! PROXY protocol headers (v1 and v2), as the seam's first stage parses them
//! (`bingfa::seam::proxy::parse`, the `ppp` crate beneath it): no input panics; a complete
//! header lies within the input and the bound; and the stage reads a header correctly
//! whatever the reads it arrives in: every proper prefix of a complete header is incomplete,
//! and so is every prefix of an input still incomplete (what is wrong is wrong at once, and
//! stays so).

#![no_main]

use bingfa::seam::proxy::{parse, Parsed, CAPACITY};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let whole = parse(data);
    match whole {
        Parsed::Complete { len, .. } => {
            assert!(len <= data.len() && len <= CAPACITY, "{len} of {}", data.len());
            assert!(len > 0);
            for end in 0..len {
                assert_eq!(parse(&data[..end]), Parsed::Incomplete, "prefix of {end} bytes");
            }
            // What follows the header does not change it.
            assert_eq!(parse(&data[..len]), whole);
        }
        Parsed::Incomplete => {
            assert!(data.len() < CAPACITY);
            for end in 0..data.len() {
                assert_eq!(parse(&data[..end]), Parsed::Incomplete, "prefix of {end} bytes");
            }
        }
        Parsed::Invalid => {}
    }
});
