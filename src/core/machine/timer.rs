//! The machine's timers as a table: one deadline per kind, the earliest one polled.

use crate::core::Millis;

/// The timers of a visitor's session machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// The visitor did not answer the authorization prompt in time.
    Authorization = 0,
    /// A visitor who announced a disconnect did not come back in time.
    ExpectedReturn = 1,
    /// Every connection dropped without notice and none came back in the grace period.
    Grace = 2,
}

impl Timer {
    pub const ALL: [Timer; 3] = [Timer::Authorization, Timer::ExpectedReturn, Timer::Grace];
}

/// One optional deadline per [`Timer`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimerTable([Option<Millis>; 3]);

impl TimerTable {
    pub fn set(&mut self, timer: Timer, deadline: Millis) {
        self.0[timer as usize] = Some(deadline);
    }

    pub fn stop(&mut self, timer: Timer) {
        self.0[timer as usize] = None;
    }

    pub fn stop_all(&mut self) {
        self.0 = [None; 3];
    }

    pub fn get(&self, timer: Timer) -> Option<Millis> {
        self.0[timer as usize]
    }

    /// The earliest deadline of any running timer.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.0.iter().flatten().min().copied()
    }

    /// Stops and returns the first timer whose deadline is at or before `now`.
    pub fn take_expired(&mut self, now: Millis) -> Option<Timer> {
        let timer = Timer::ALL
            .into_iter()
            .find(|t| self.0[*t as usize].is_some_and(|d| d <= now))?;
        self.stop(timer);
        Some(timer)
    }
}
