//! Time as the core sees it: handed in by the caller, never read from the OS here.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The current time, supplied by the I/O layer once per loop turn.
///
/// It carries both clocks the core needs: the monotonic one for timeouts and the wall clock
/// for the `Date` header. The `Date` text is formatted only when the wall-clock second changes
/// (RFC 9110 §6.6.1 needs one-second resolution), so a busy loop pays for it once a second.
#[derive(Debug, Clone)]
pub struct Clock {
    now: Instant,
    wall: SystemTime,
    second: u64,
    date: String,
}

impl Clock {
    pub fn new(wall: SystemTime, now: Instant) -> Clock {
        Clock {
            now,
            wall,
            second: unix_second(wall),
            date: format_date(wall),
        }
    }

    /// Moves the clock forward; the `Date` text is rebuilt only when the second has changed.
    pub fn tick(&mut self, wall: SystemTime, now: Instant) {
        self.now = now;
        self.wall = wall;
        let second = unix_second(wall);
        if second != self.second {
            self.second = second;
            self.date = format_date(wall);
        }
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    /// The wall-clock time, for comparing with file times.
    pub fn wall(&self) -> SystemTime {
        self.wall
    }

    /// The `Date` header value for this second, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
    pub fn date(&self) -> &str {
        &self.date
    }
}

/// httpdate panics outside 1970..9999; a clock set that wrong gets the nearest date it can show.
fn format_date(wall: SystemTime) -> String {
    let latest = UNIX_EPOCH + std::time::Duration::from_secs(253_402_300_799); // 9999-12-31T23:59:59
    httpdate::fmt_http_date(wall.clamp(UNIX_EPOCH, latest))
}

fn unix_second(wall: SystemTime) -> u64 {
    // A wall clock set before 1970 is not worth an error; it formats as the epoch.
    wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn date_changes_only_with_the_second() {
        let start = UNIX_EPOCH + Duration::from_secs(784_111_777);
        let mono = Instant::now();
        let mut clock = Clock::new(start, mono);
        assert_eq!(clock.date(), "Sun, 06 Nov 1994 08:49:37 GMT");
        clock.tick(start + Duration::from_millis(999), mono);
        assert_eq!(clock.date(), "Sun, 06 Nov 1994 08:49:37 GMT");
        clock.tick(start + Duration::from_secs(1), mono);
        assert_eq!(clock.date(), "Sun, 06 Nov 1994 08:49:38 GMT");
    }
}
