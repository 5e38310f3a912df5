//! Time as the engine receives it, and the clock it stamps entries with.
//!
//! The driver hands every input a [`Now`]: monotonic ms (deadlines,
//! timeouts, expiry) and the wall clock (ms since the epoch). Only
//! [`Stamps`] reads the wall clock, and only to steer the time a leader
//! stamps into entries (Stat times, TTLs): stamps advance with monotonic
//! time from the last stamp the member saw, and move toward the wall clock
//! by at most a tenth of the time elapsed. A wall clock that jumps by
//! minutes, either way, moves no stamp by more than that, and stamps never
//! go back; a member that becomes leader carries on from the cluster's last
//! stamp rather than from its own clock.

/// The two clocks, as the driver read them for one input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Now {
    /// Monotonic ms since some fixed point of this process (or simulation).
    pub mono_ms: u64,
    /// Wall-clock ms since the Unix epoch.
    pub wall_ms: i64,
}

/// The entry stamp clock. See the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Stamps {
    /// The last stamp and the monotonic time it was taken or seen at.
    anchor: Option<(i64, u64)>,
}

/// How far a stamp moves toward the wall clock, per ms of monotonic time:
/// one tenth (as a divisor).
const SLEW_DIVISOR: i64 = 10;

impl Stamps {
    /// The stamp for an entry proposed now.
    pub fn stamp(&mut self, now: Now) -> i64 {
        let stamp = match self.anchor {
            None => now.wall_ms,
            Some((last, at)) => {
                let elapsed = now.mono_ms.saturating_sub(at) as i64;
                let predicted = last + elapsed;
                let slew = elapsed / SLEW_DIVISOR;
                predicted + (now.wall_ms - predicted).clamp(-slew, slew)
            }
        };
        self.anchor = Some((stamp, now.mono_ms));
        stamp
    }

    /// An applied entry carried `stamp` (the leader's): later stamps of
    /// this member continue from it when it is ahead.
    pub fn seen(&mut self, stamp: i64, now: Now) {
        let ahead = match self.anchor {
            None => true,
            Some((last, at)) => stamp > last + now.mono_ms.saturating_sub(at) as i64,
        };
        if ahead {
            self.anchor = Some((stamp, now.mono_ms));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wall_clock_jump_moves_stamps_by_a_tenth_of_the_time_elapsed() {
        // Proves a jump of ten minutes either way moves stamps by at most a
        // tenth of the monotonic time since, and that stamps never go back.
        let mut stamps = Stamps::default();
        let start = stamps.stamp(Now { mono_ms: 0, wall_ms: 1_000_000 });
        assert_eq!(start, 1_000_000);
        let ahead = stamps.stamp(Now { mono_ms: 1_000, wall_ms: 1_001_000 + 600_000 });
        assert_eq!(ahead, 1_001_000 + 100);
        let back = stamps.stamp(Now { mono_ms: 2_000, wall_ms: 1_002_000 - 600_000 });
        assert_eq!(back, ahead + 1_000 - 100);
        assert!(back > ahead);
    }

    #[test]
    fn stamps_carry_on_from_the_leaders_stamps_seen() {
        // Proves a member whose own wall clock is behind stamps after the
        // leader's last stamp once it has seen it.
        let mut stamps = Stamps::default();
        stamps.stamp(Now { mono_ms: 0, wall_ms: 5_000 });
        stamps.seen(900_000, Now { mono_ms: 10, wall_ms: 5_010 });
        let next = stamps.stamp(Now { mono_ms: 20, wall_ms: 5_020 });
        assert_eq!(next, 900_010 - 1);
    }
}
