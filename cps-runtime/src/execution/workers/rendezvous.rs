//! A barrier for the threads of a [`ThreadGroup`](super::ThreadGroup) that
//! no thread waits at forever: when a member panics or leaves the group,
//! every member waiting (or arriving later) panics instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a member spins before it sleeps: members of a group on cores
/// of their own arrive within microseconds of each other at every sum, and
/// waking a sleeping thread costs several times a sum of a single number
/// (`examples/allreduce_bench.rs`; `docs/performance.md`).
const SPIN: Duration = Duration::from_micros(50);

/// Where the members of a group wait for each other.
pub(super) struct Rendezvous {
    size: usize,
    state: Mutex<State>,
    everyone_here: Condvar,
    /// `State::round`, and `u64::MAX` once broken, readable without the
    /// lock by a spinning member.
    round: AtomicU64,
}

struct State {
    /// Members waiting in the current round.
    waiting: usize,
    /// Rounds completed: a waiting member leaves when this moves on.
    round: u64,
    /// Why the group can no longer meet, once it cannot.
    broken: Option<String>,
}

impl Rendezvous {
    pub(super) fn new(size: usize) -> Self {
        Rendezvous {
            size,
            state: Mutex::new(State {
                waiting: 0,
                round: 0,
                broken: None,
            }),
            everyone_here: Condvar::new(),
            round: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state torn
        // (every update is a single assignment), so a poisoned lock is used
        // as it is.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until every member has arrived.
    ///
    /// # Panics
    /// When the group is broken (see [`Rendezvous::break_up`]), before or
    /// while waiting.
    pub(super) fn wait(&self) {
        let mut state = self.lock();
        Self::check(&state);
        state.waiting += 1;
        if state.waiting == self.size {
            state.waiting = 0;
            state.round += 1;
            self.round.store(state.round, Ordering::Release);
            self.everyone_here.notify_all();
            return;
        }
        let round = state.round;
        drop(state);
        if self.spin_until_round_ends(round) {
            return;
        }
        let mut state = self.lock();
        while state.round == round && state.broken.is_none() {
            state = self
                .everyone_here
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        if state.round == round {
            Self::check(&state);
        }
    }

    /// Spins for at most [`SPIN`] until round `round` ends; whether it
    /// ended (a broken group is left to the sleeping path to report).
    fn spin_until_round_ends(&self, round: u64) -> bool {
        let start = Instant::now();
        loop {
            for _ in 0..64 {
                match self.round.load(Ordering::Acquire) {
                    now if now == round => std::hint::spin_loop(),
                    u64::MAX => return false,
                    _ => return true,
                }
            }
            if start.elapsed() > SPIN {
                return false;
            }
        }
    }

    fn check(state: &State) {
        if let Some(reason) = &state.broken {
            panic!("a data-parallel worker stopped waiting for the others: {reason}");
        }
    }

    /// Why the group broke up first, once it has.
    pub(super) fn broken(&self) -> Option<String> {
        self.lock().broken.clone()
    }

    /// Marks the group as unable to meet again, for `reason`, and wakes
    /// every waiting member (who then panics).
    pub(super) fn break_up(&self, reason: String) {
        let mut state = self.lock();
        state.broken.get_or_insert(reason);
        self.round.store(u64::MAX, Ordering::Release);
        self.everyone_here.notify_all();
    }
}
