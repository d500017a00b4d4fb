//! A fork-join for work measured in microseconds: the halves of a decode step's matrix products.
//!
//! A decode step runs ~45 products of 50–300 µs each, with a few µs of other work between them. rayon's
//! workers fall asleep between such products and take longer to wake than a half takes to run, so
//! `rayon::join` ran them one after the other (measured slower than one thread). Here one helper thread
//! stays awake between jobs — it spins, then yields to other threads, and parks only after
//! [`STAY_AWAKE`] without work — so that both cores stream weights at once.
//!
//! One caller at a time uses the helper; a second concurrent caller (tests run in parallel, say) runs its
//! halves itself, with the same results.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Mutex, OnceLock, TryLockError};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// How long the helper waits for the next job before it parks: longer than the gap between two products
/// of a decode step, short enough to give the core back soon after generation ends.
const STAY_AWAKE: Duration = Duration::from_millis(2);
/// Of [`STAY_AWAKE`], how long the helper busy-spins before it starts yielding its core.
const SPIN: Duration = Duration::from_micros(100);

/// Runs `a` on the calling thread and `b` on the helper (or both here when the helper is busy or the
/// machine has one core), and returns when both are done. A panic in either is raised here.
pub fn join(a: impl FnOnce() + Send, b: impl FnOnce() + Send) {
    let Some(helper) = helper() else {
        a();
        b();
        return;
    };
    let guard = match helper.caller.try_lock() {
        Ok(guard) => guard,
        Err(TryLockError::WouldBlock) => {
            a();
            b();
            return;
        }
        Err(TryLockError::Poisoned(p)) => p.into_inner(),
    };
    let mut b = Some(b);
    let mut run_b = || (b.take().expect("a job runs once"))();
    let job: &mut (dyn FnMut() + Send) = &mut run_b;
    // SAFETY: the helper only calls the job between `posted` and `done` reaching the same count, and this
    // function does not return (or unwind) before it has seen `done` reach it: the borrow outlives every
    // use. The `caller` lock keeps the slot to one job at a time.
    let job: &'static mut (dyn FnMut() + Send) = unsafe { std::mem::transmute(job) };
    *helper.job.lock().unwrap_or_else(|p| p.into_inner()) = Some(Job(job));
    let ticket = helper.posted.fetch_add(1, SeqCst) + 1;
    if helper.parked.load(SeqCst) {
        helper.thread.unpark();
    }
    let ours = catch_unwind(AssertUnwindSafe(a));
    while helper.done.load(SeqCst) < ticket {
        std::hint::spin_loop();
    }
    let theirs = helper
        .panic
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    drop(guard);
    if let Err(payload) = ours {
        resume_unwind(payload);
    }
    if let Some(payload) = theirs {
        resume_unwind(payload);
    }
}

struct Helper {
    /// Held by the one caller whose job is in flight.
    caller: Mutex<()>,
    job: Mutex<Option<Job>>,
    /// Jobs handed over and jobs finished; the helper works while `done < posted`.
    posted: AtomicU64,
    done: AtomicU64,
    /// Set by the helper before it parks (and re-checks `posted`), so a caller knows to unpark it.
    parked: AtomicBool,
    /// A panic from the last job, for the caller to raise.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    thread: Thread,
}

struct Job(&'static mut (dyn FnMut() + Send));

/// The helper, started on first use; none on a single-core machine.
fn helper() -> Option<&'static Helper> {
    static HELPER: OnceLock<Option<&'static Helper>> = OnceLock::new();
    *HELPER.get_or_init(|| {
        let cores = thread::available_parallelism().map_or(1, |n| n.get());
        if cores < 2 {
            return None;
        }
        let (sender, receiver) = std::sync::mpsc::channel::<&'static Helper>();
        let thread = thread::Builder::new()
            .name("tessera-hot-join".into())
            .spawn(move || serve(receiver.recv().expect("the helper's state arrives")))
            .ok()?;
        let helper: &'static Helper = Box::leak(Box::new(Helper {
            caller: Mutex::new(()),
            job: Mutex::new(None),
            posted: AtomicU64::new(0),
            done: AtomicU64::new(0),
            parked: AtomicBool::new(false),
            panic: Mutex::new(None),
            thread: thread.thread().clone(),
        }));
        sender.send(helper).ok()?;
        Some(helper)
    })
}

/// The helper's loop: wait for a job (spin, then yield, then park), run it, count it done.
fn serve(helper: &'static Helper) {
    let mut seen = 0;
    loop {
        let idle = Instant::now();
        while helper.posted.load(SeqCst) == seen {
            let waited = idle.elapsed();
            if waited < SPIN {
                std::hint::spin_loop();
            } else if waited < STAY_AWAKE {
                thread::yield_now();
            } else {
                // Announce the park, then look once more: a caller that posted before seeing `parked`
                // is caught by this check, one that posts after it unparks us.
                helper.parked.store(true, SeqCst);
                if helper.posted.load(SeqCst) == seen {
                    thread::park();
                }
                helper.parked.store(false, SeqCst);
            }
        }
        seen += 1;
        let job = helper
            .job
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .expect("a posted job is in the slot");
        if let Err(payload) = catch_unwind(AssertUnwindSafe(job.0)) {
            *helper.panic.lock().unwrap_or_else(|p| p.into_inner()) = Some(payload);
        }
        helper.done.store(seen, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn both_halves_run_and_their_writes_are_seen() {
        for round in 0..1000 {
            let (mut left, mut right) = (0, 0);
            join(|| left = round, || right = round + 1);
            assert_eq!((left, right), (round, round + 1));
        }
    }

    /// Callers on several threads at once: each one's halves run exactly once.
    #[test]
    fn concurrent_callers_each_get_both_halves() {
        let count = AtomicUsize::new(0);
        thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..500 {
                        join(
                            || {
                                count.fetch_add(1, SeqCst);
                            },
                            || {
                                count.fetch_add(1, SeqCst);
                            },
                        );
                    }
                });
            }
        });
        assert_eq!(count.load(SeqCst), 4 * 500 * 2);
    }

    /// Jobs posted after the helper has parked still run (it is woken, not waited for forever).
    #[test]
    fn a_parked_helper_wakes_for_the_next_job() {
        let mut ran = false;
        join(|| {}, || {});
        let helper = helper().expect("test machines have two cores");
        while !helper.parked.load(SeqCst) {
            thread::yield_now();
        }
        join(|| {}, || ran = true);
        assert!(ran);
    }

    #[test]
    fn a_panic_in_the_helpers_half_reaches_the_caller_and_the_helper_survives() {
        let caught = catch_unwind(|| join(|| {}, || panic!("in the second half")));
        let message = caught.expect_err("the panic is raised in the caller");
        assert_eq!(message.downcast_ref::<&str>(), Some(&"in the second half"));
        let mut after = false;
        join(|| {}, || after = true);
        assert!(after);
    }
}
