//! The hub's one deadline queue: every timer (a visitor machine's next deadline, a
//! lookup code's expiry, the deferred visitor-update broadcast, a socket's silence
//! allowance) is an entry here, and
//! `Hub::poll_timeout` is its earliest. Setting a timer replaces that timer's deadline;
//! firing early or twice is harmless (callers re-check what is due).

use std::collections::{BTreeSet, HashMap};

use covisit::core::Millis;

/// What a deadline is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// The visitor machine's earliest deadline (authorization, grace, return time).
    Machine(String),
    /// The visitor's lookup code expires: its agents must stop seeing it.
    LookupExpiry(String),
    /// Deferred visitor updates and coalesced url writes are due.
    Broadcast,
    /// A socket may have been silent too long (its heartbeat allowance).
    Silence(u64),
    /// A recorded session's buffered records are due at the writer (or its end is).
    Recording(String),
}

#[derive(Debug, Default)]
pub struct Timers {
    queue: BTreeSet<(Millis, Timer)>,
    deadlines: HashMap<Timer, Millis>,
}

impl Timers {
    /// Arms `timer` for `at` (replacing its earlier deadline), or disarms it (None).
    pub fn set(&mut self, timer: Timer, at: Option<Millis>) {
        // Re-armed for the same time (a visitor's every frame re-arms its timers).
        if self.deadlines.get(&timer) == at.as_ref() {
            return;
        }
        if let Some(old) = self.deadlines.remove(&timer) {
            self.queue.remove(&(old, timer.clone()));
        }
        if let Some(at) = at {
            self.queue.insert((at, timer.clone()));
            self.deadlines.insert(timer, at);
        }
    }

    /// Arms `timer` for `at` unless it is armed for an earlier time already.
    pub fn set_earliest(&mut self, timer: Timer, at: Millis) {
        if self.deadlines.get(&timer).is_some_and(|d| *d <= at) {
            return;
        }
        self.set(timer, Some(at));
    }

    pub fn next(&self) -> Option<Millis> {
        self.queue.first().map(|(at, _)| *at)
    }

    /// Takes every timer due at `now`, earliest first.
    pub fn take_due(&mut self, now: Millis) -> Vec<Timer> {
        let mut due = Vec::new();
        while let Some((at, _)) = self.queue.first() {
            if *at > now {
                break;
            }
            if let Some((_, timer)) = self.queue.pop_first() {
                self.deadlines.remove(&timer);
                due.push(timer);
            }
        }
        due
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_deadline_per_timer_earliest_first() {
        let mut t = Timers::default();
        t.set(Timer::Machine("a".into()), Some(Millis(30)));
        t.set(Timer::Machine("b".into()), Some(Millis(10)));
        t.set(Timer::Machine("a".into()), Some(Millis(5)));
        t.set_earliest(Timer::Broadcast, Millis(20));
        t.set_earliest(Timer::Broadcast, Millis(25));
        assert_eq!(t.next(), Some(Millis(5)));
        assert_eq!(t.len(), 3);
        assert_eq!(
            t.take_due(Millis(10)),
            vec![Timer::Machine("a".into()), Timer::Machine("b".into())]
        );
        assert_eq!(t.take_due(Millis(19)), Vec::<Timer>::new());
        assert_eq!(t.take_due(Millis(100)), vec![Timer::Broadcast]);
        t.set(Timer::Broadcast, None);
        assert_eq!(t.next(), None);
    }
}
