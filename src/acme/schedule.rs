//! When to order: a certificate is renewed once a third of its lifetime is left (a little
//! earlier, by a jitter, so that servers started together do not order together), and an order
//! that failed is tried again after a delay that doubles with each failure in a row, capped,
//! also jittered. Pure: every time is an argument, and so is the randomness.

use std::time::{Duration, SystemTime};

/// The part of a lifetime left when renewal is due: a third, as Let's Encrypt and Caddy advise
/// (30 days of a 90-day certificate).
const RENEW_WITH_LEFT: u32 = 3;
/// The renewal time moves earlier by up to this part of the lifetime (a 90-day certificate:
/// up to 21 hours).
const JITTER_OF_LIFETIME: u32 = 100;
/// However renewal is set (see `--acme-renew-before`), a certificate is not ordered again
/// sooner than this after the last one for its name: never more than one order a second.
pub(super) const LEAST_GAP: Duration = Duration::from_secs(1);

/// From when to when a certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Validity {
    pub fn lifetime(&self) -> Duration {
        self.not_after
            .duration_since(self.not_before)
            .unwrap_or(Duration::ZERO)
    }

    /// Whether it can be served at `now`.
    pub fn valid_at(&self, now: SystemTime) -> bool {
        self.not_before <= now && now < self.not_after
    }

    /// When to renew: `renew_before` the end (a third of the lifetime by default), earlier by
    /// `jitter` (0 to 1) of a hundredth of the lifetime.
    pub fn renew_at(&self, renew_before: Option<Duration>, jitter: f64) -> SystemTime {
        let lifetime = self.lifetime();
        let before = renew_before.unwrap_or(lifetime / RENEW_WITH_LEFT);
        let early = (lifetime / JITTER_OF_LIFETIME).mul_f64(jitter.clamp(0.0, 1.0));
        self.not_after
            .checked_sub(before + early)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

/// Why an order failed, which decides how long until the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The CA did not answer (down, unreachable, a network error): cheap to ask again soon.
    Unreachable,
    /// The CA answered no (a problem document, a challenge that failed validation): asked
    /// again only after minutes, since a CA limits failures (Let's Encrypt: 5 an hour).
    Refused,
}

impl Failure {
    /// The delay after the first failure of this kind, and the longest.
    fn bounds(self) -> (Duration, Duration) {
        match self {
            Failure::Unreachable => (Duration::from_secs(1), Duration::from_secs(10 * 60)),
            Failure::Refused => (Duration::from_secs(60), Duration::from_secs(6 * 60 * 60)),
        }
    }
}

/// The failures in a row of one name's orders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Backoff {
    failures: u32,
}

impl Backoff {
    /// One more failure: how long to wait before the next order, from the first delay of its
    /// kind doubling per failure in a row to the cap, then `jitter` (0 to 1) adds up to a
    /// fifth more, so that instances failing together spread out.
    pub fn failed(&mut self, kind: Failure, jitter: f64) -> Duration {
        let (first, most) = kind.bounds();
        let doublings = self.failures.min(20);
        self.failures = self.failures.saturating_add(1);
        let delay = first.saturating_mul(1 << doublings).min(most);
        delay + delay.mul_f64(jitter.clamp(0.0, 1.0) / 5.0)
    }

    /// An order succeeded: the next failure starts over.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 60 * 60);

    fn ninety_days_from(start: SystemTime) -> Validity {
        Validity {
            not_before: start,
            not_after: start + 90 * DAY,
        }
    }

    #[test]
    fn renewal_is_due_with_a_third_left_a_little_earlier_by_jitter() {
        let start = SystemTime::UNIX_EPOCH + 1000 * DAY;
        let validity = ninety_days_from(start);
        assert_eq!(validity.renew_at(None, 0.0), start + 60 * DAY);
        let jittered = validity.renew_at(None, 1.0);
        assert_eq!(
            (start + 60 * DAY).duration_since(jittered).unwrap(),
            90 * DAY / 100
        );
        assert_eq!(validity.renew_at(None, 7.0), jittered, "jitter is capped");
        assert!(validity.valid_at(start) && !validity.valid_at(start + 90 * DAY));
    }

    #[test]
    fn a_renewal_threshold_replaces_the_third() {
        let start = SystemTime::UNIX_EPOCH + 1000 * DAY;
        let validity = ninety_days_from(start);
        let at = validity.renew_at(Some(89 * DAY), 0.0);
        assert_eq!(at, start + DAY);
        let past = validity.renew_at(Some(1000 * DAY), 0.0);
        assert!(past < start, "a threshold beyond the lifetime: due at once");
    }

    #[test]
    fn backoff_doubles_per_failure_up_to_its_cap_and_starts_over() {
        let mut backoff = Backoff::default();
        let delays: Vec<u64> = (0..4)
            .map(|_| backoff.failed(Failure::Unreachable, 0.0).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8]);
        for _ in 0..30 {
            backoff.failed(Failure::Unreachable, 0.0);
        }
        assert_eq!(
            backoff.failed(Failure::Unreachable, 0.0),
            Duration::from_secs(600)
        );
        assert_eq!(
            backoff.failed(Failure::Refused, 0.0),
            Duration::from_secs(6 * 3600)
        );
        backoff.succeeded();
        assert_eq!(backoff.failed(Failure::Refused, 0.0), Duration::from_secs(60));
        let jittered = backoff.failed(Failure::Refused, 1.0);
        assert_eq!(jittered, Duration::from_secs(144), "120 s and a fifth more");
    }
}
