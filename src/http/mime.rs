//! `Content-Type` from a file extension (RFC 9110 §8.3).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

/// The media type for a file with this extension: `mime_guess` knows the types; text types get
/// `charset=utf-8` because a browser left to guess may pick a legacy encoding for UTF-8 files.
/// Always borrowed: answering a request allocates no text for it.
pub fn content_type(extension: Option<&str>) -> Cow<'static, str> {
    let essence = extension
        .and_then(|ext| mime_guess::from_ext(ext).first_raw())
        .unwrap_or("application/octet-stream");
    if is_textual(essence) {
        Cow::Borrowed(with_charset(essence))
    } else {
        Cow::Borrowed(essence)
    }
}

/// `essence; charset=utf-8`, made once per text type and kept for the life of the process.
/// Bounded: the essences are mime_guess's own static strings, a fixed table.
fn with_charset(essence: &'static str) -> &'static str {
    static MADE: OnceLock<Mutex<HashMap<&'static str, &'static str>>> = OnceLock::new();
    let mut made = MADE
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    made.entry(essence)
        .or_insert_with(|| Box::leak(format!("{essence}; charset=utf-8").into_boxed_str()))
}

fn is_textual(essence: &str) -> bool {
    essence.starts_with("text/") || essence == "application/javascript"
}

#[cfg(test)]
mod tests {
    use super::content_type;

    #[test]
    fn common_types() {
        let cases = [
            ("html", "text/html; charset=utf-8"),
            ("css", "text/css; charset=utf-8"),
            ("js", "text/javascript; charset=utf-8"),
            ("mjs", "application/javascript; charset=utf-8"),
            ("txt", "text/plain; charset=utf-8"),
            ("json", "application/json"),
            ("svg", "image/svg+xml"),
            ("png", "image/png"),
            ("jpg", "image/jpeg"),
            ("gif", "image/gif"),
            ("webp", "image/webp"),
            ("avif", "image/avif"),
            ("ico", "image/x-icon"),
            ("woff2", "font/woff2"),
            ("wasm", "application/wasm"),
            ("pdf", "application/pdf"),
            ("mp4", "video/mp4"),
            ("HTML", "text/html; charset=utf-8"),
            ("nosuchext", "application/octet-stream"),
        ];
        for (ext, expected) in cases {
            assert_eq!(content_type(Some(ext)), expected, "extension {ext}");
        }
        assert_eq!(content_type(None), "application/octet-stream");
    }
}
