//! Access-log lines: `common` and `combined` as Apache and nginx write them, or one JSON
//! object per line. Times are UTC.

use crate::http::Exchange;
use serde::{Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;
use std::io::Write;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How each access-log line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// HOST - - [TIME] "REQUEST" STATUS BYTES, Apache's and nginx's common log format
    Common,
    /// common, then "REFERER" "USER-AGENT" (nginx's default)
    Combined,
    /// one JSON object per line
    Json,
}

impl LogFormat {
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Common => "common",
            LogFormat::Combined => "combined",
            LogFormat::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Appends `exchange`, which took `duration`, to `out` as one line in `format`, newline
/// included.
pub(crate) fn write_line(out: &mut Vec<u8>, format: LogFormat, exchange: &Exchange<'_>, duration: Duration) {
    match format {
        LogFormat::Common => common(out, exchange),
        LogFormat::Combined => {
            common(out, exchange);
            out.extend_from_slice(b" \"");
            quoted_or_dash(out, exchange.referer);
            out.extend_from_slice(b"\" \"");
            quoted_or_dash(out, exchange.user_agent);
            out.push(b'"');
        }
        LogFormat::Json => json(out, exchange, duration),
    }
    out.push(b'\n');
}

// Writing into a Vec cannot fail: the results of `write!` below are ignored.

/// `127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "GET /a.html HTTP/1.1" 200 2326`
fn common(out: &mut Vec<u8>, exchange: &Exchange<'_>) {
    match exchange.peer {
        Some(ip) => drop(write!(out, "{ip}")),
        None => out.push(b'-'),
    }
    let t = Utc::of(exchange.time);
    let month = MONTHS[t.month as usize - 1];
    let _ = write!(
        out,
        " - - [{:02}/{month}/{}:{:02}:{:02}:{:02} +0000] \"",
        t.day, t.year, t.hour, t.minute, t.second
    );
    match exchange.request {
        Some(line) => {
            escape(out, line.method);
            out.push(b' ');
            escape(out, line.target);
            out.push(b' ');
            out.extend_from_slice(line.version.as_bytes());
        }
        None => out.push(b'-'),
    }
    let _ = write!(out, "\" {} ", exchange.status);
    match exchange.body_bytes {
        0 => out.push(b'-'),
        bytes => drop(write!(out, "{bytes}")),
    }
}

fn quoted_or_dash(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(value) => escape(out, value),
        None => out.push(b'-'),
    }
}

/// Copies `bytes`, writing `"`, `\`, control bytes and bytes beyond ASCII as `\xHH`, as
/// nginx does: a quoted field cannot end early, and a line cannot be forged or broken.
fn escape(out: &mut Vec<u8>, bytes: &[u8]) {
    for &byte in bytes {
        match byte {
            b'"' | b'\\' | 0..=0x1f | 0x7f..=0xff => drop(write!(out, "\\x{byte:02X}")),
            _ => out.push(byte),
        }
    }
}

/// One JSON line. Text that is not UTF-8 shows with U+FFFD in place of the bad bytes. Every
/// line has every key, `null` where there is nothing to say (the TLS ones over plaintext), so
/// that a log processor sees one schema.
#[derive(Serialize)]
struct JsonLine<'a> {
    ts: Timestamp,
    remote: Option<IpAddr>,
    method: Option<Cow<'a, str>>,
    path: Option<Cow<'a, str>>,
    version: Option<&'static str>,
    status: u16,
    bytes: u64,
    referer: Option<Cow<'a, str>>,
    user_agent: Option<Cow<'a, str>>,
    duration_ms: f64,
    tls_version: Option<&'static str>,
    cipher: Option<&'static str>,
    sni: Option<&'a str>,
    alpn: Option<&'a str>,
}

fn json(out: &mut Vec<u8>, exchange: &Exchange<'_>, duration: Duration) {
    let line = JsonLine {
        ts: Timestamp(exchange.time),
        remote: exchange.peer,
        method: exchange.request.map(|line| text(line.method)),
        path: exchange.request.map(|line| text(line.target)),
        version: exchange.request.map(|line| line.version),
        status: exchange.status,
        bytes: exchange.body_bytes,
        referer: exchange.referer.map(text),
        user_agent: exchange.user_agent.map(text),
        // Microseconds: finer is noise.
        duration_ms: duration.as_micros() as f64 / 1000.0,
        tls_version: exchange.tls.map(|tls| tls.version.name()),
        cipher: exchange.tls.map(|tls| tls.cipher),
        sni: exchange.tls.and_then(|tls| tls.sni.as_deref()),
        alpn: exchange.tls.and_then(|tls| tls.alpn.as_deref()),
    };
    // Serializing strings and numbers into a Vec cannot fail.
    let _ = serde_json::to_writer(out, &line);
}

fn text(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// RFC 3339 in UTC with milliseconds: `2000-10-10T13:55:36.123Z`.
struct Timestamp(SystemTime);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = Utc::of(self.0);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year, t.month, t.day, t.hour, t.minute, t.second, t.millis
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A wall-clock time broken down in UTC.
#[derive(Debug, PartialEq, Eq)]
struct Utc {
    year: i64,
    month: u32,
    day: u32,
    hour: u64,
    minute: u64,
    second: u64,
    millis: u32,
}

impl Utc {
    /// A clock set before 1970 shows as the epoch.
    fn of(time: SystemTime) -> Utc {
        let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let seconds = since_epoch.as_secs();
        let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
        let in_day = seconds % 86_400;
        Utc {
            year,
            month,
            day,
            hour: in_day / 3600,
            minute: in_day / 60 % 60,
            second: in_day % 60,
            millis: since_epoch.subsec_millis(),
        }
    }
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153; // March is 0
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{RequestLine, TlsSession, TlsVersion};

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    /// 2000-10-10T13:55:36Z, the time of Apache's example line.
    const APACHE_EXAMPLE: u64 = 971_186_136;

    fn exchange<'a>() -> Exchange<'a> {
        Exchange {
            peer: Some([127, 0, 0, 1].into()),
            tls: None,
            request: Some(RequestLine {
                method: b"GET",
                target: b"/a.html",
                version: "HTTP/1.1",
            }),
            referer: Some(b"http://example.com/"),
            user_agent: Some(b"curl/8.5.0"),
            forwarded: None,
            forwarded_for: None,
            status: 200,
            body_bytes: 2326,
            bytes: 2500,
            received: std::time::Instant::now(),
            time: at(APACHE_EXAMPLE) + Duration::from_millis(45),
        }
    }

    fn line(format: LogFormat, exchange: &Exchange<'_>) -> String {
        let mut out = Vec::new();
        write_line(&mut out, format, exchange, Duration::from_micros(1234));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn common_and_combined_as_apache_writes_them() {
        assert_eq!(
            line(LogFormat::Common, &exchange()),
            "127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] \"GET /a.html HTTP/1.1\" 200 2326\n"
        );
        assert_eq!(
            line(LogFormat::Combined, &exchange()),
            "127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] \"GET /a.html HTTP/1.1\" 200 2326 \
             \"http://example.com/\" \"curl/8.5.0\"\n"
        );
        let unknown = Exchange {
            peer: None,
            request: None,
            referer: None,
            user_agent: None,
            status: 400,
            body_bytes: 0,
            ..exchange()
        };
        assert_eq!(
            line(LogFormat::Combined, &unknown),
            "- - - [10/Oct/2000:13:55:36 +0000] \"-\" 400 - \"-\" \"-\"\n"
        );
    }

    #[test]
    fn quotes_backslashes_and_control_bytes_are_escaped() {
        let tricky = Exchange {
            request: Some(RequestLine {
                method: b"GET",
                target: b"/a\"b\\c\x7f\xe4",
                version: "HTTP/1.1",
            }),
            user_agent: Some(b"x\" 200 1 \"forged\ttab\r\n"),
            ..exchange()
        };
        let text = line(LogFormat::Combined, &tricky);
        assert!(text.contains(r#""GET /a\x22b\x5Cc\x7F\xE4 HTTP/1.1""#), "{text}");
        assert!(
            text.ends_with("\"x\\x22 200 1 \\x22forged\\x09tab\\x0D\\x0A\"\n"),
            "{text}"
        );
        assert_eq!(text.matches('\n').count(), 1);
    }

    #[test]
    fn json_is_one_object_per_line() {
        let text = line(LogFormat::Json, &exchange());
        assert_eq!(text.matches('\n').count(), 1);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["ts"], "2000-10-10T13:55:36.045Z");
        assert_eq!(value["remote"], "127.0.0.1");
        assert_eq!(value["method"], "GET");
        assert_eq!(value["path"], "/a.html");
        assert_eq!(value["version"], "HTTP/1.1");
        assert_eq!(value["status"], 200);
        assert_eq!(value["bytes"], 2326);
        assert_eq!(value["referer"], "http://example.com/");
        assert_eq!(value["user_agent"], "curl/8.5.0");
        assert_eq!(value["duration_ms"], 1.234);
        for key in ["tls_version", "cipher", "sni", "alpn"] {
            assert_eq!(value[key], serde_json::Value::Null, "plaintext: {key} in {text}");
            assert!(value.get(key).is_some(), "every line has {key}: {text}");
        }
        let odd = Exchange {
            peer: Some("::1".parse().unwrap()),
            request: None,
            user_agent: Some(b"quote\" newline\n \xff"),
            ..exchange()
        };
        let text = line(LogFormat::Json, &odd);
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["remote"], "::1");
        assert_eq!(value["method"], serde_json::Value::Null);
        assert_eq!(value["user_agent"], "quote\" newline\n \u{fffd}");
    }

    #[test]
    fn json_shows_the_tls_session_and_other_formats_do_not() {
        let session = TlsSession {
            version: TlsVersion::Tls13,
            cipher: "TLS13_AES_128_GCM_SHA256",
            sni: Some("example.com".into()),
            alpn: Some("http/1.1".into()),
        };
        let over_tls = Exchange {
            tls: Some(&session),
            ..exchange()
        };
        let text = line(LogFormat::Json, &over_tls);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["tls_version"], "TLSv1.3");
        assert_eq!(value["cipher"], "TLS13_AES_128_GCM_SHA256");
        assert_eq!(value["sni"], "example.com");
        assert_eq!(value["alpn"], "http/1.1");
        let no_name = TlsSession {
            version: TlsVersion::Tls12,
            sni: None,
            alpn: None,
            ..session.clone()
        };
        let text = line(
            LogFormat::Json,
            &Exchange {
                tls: Some(&no_name),
                ..exchange()
            },
        );
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["tls_version"], "TLSv1.2");
        assert_eq!(value["sni"], serde_json::Value::Null);
        assert_eq!(value["alpn"], serde_json::Value::Null);
        for format in [LogFormat::Common, LogFormat::Combined] {
            assert_eq!(line(format, &over_tls), line(format, &exchange()), "{format}");
        }
    }

    #[test]
    fn utc_dates_agree_with_httpdate() {
        // Every few days over five centuries, leap years and their exceptions included.
        for seconds in (0..16_000_000_000u64).step_by(86_400 * 7 + 3_661) {
            let t = Utc::of(at(seconds));
            let expected = httpdate::fmt_http_date(at(seconds)); // "Tue, 10 Oct 2000 13:55:36 GMT"
            let ours = format!(
                "{:02} {} {} {:02}:{:02}:{:02}",
                t.day,
                MONTHS[t.month as usize - 1],
                t.year,
                t.hour,
                t.minute,
                t.second
            );
            assert_eq!(&expected[5..25], ours, "at {seconds}");
        }
        assert_eq!(Utc::of(UNIX_EPOCH - Duration::from_secs(5)), Utc::of(UNIX_EPOCH));
    }
}
