//! Spreading independent work over a few `std` threads.
//!
//! This is the only concurrency in the pure core (`config`, `render`): plain
//! scoped threads over disjoint slices, no runtime, no shared mutable state,
//! and results in input order, so the output is the same as a sequential
//! run whatever the number of threads.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Parts per thread: threads claim parts one at a time, so a thread that
/// gets less CPU (or slower items) than another does fewer parts instead of
/// keeping the others waiting at the end.
const PARTS_PER_THREAD: usize = 32;

/// How many threads for `len` items: up to `available_parallelism()`, with
/// at least `min_per_thread` items each.
fn thread_count(len: usize, min_per_thread: usize) -> usize {
    std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(len / min_per_thread.max(1))
        .max(1)
}

/// Runs `work(part)` for every part index below `parts` on `threads`
/// threads (this one included), each claiming the next unclaimed part, and
/// returns the results in part order. A panic in a worker is resumed here.
fn run_parts<R, W>(parts: usize, threads: usize, work: W) -> Vec<R>
where
    R: Send,
    W: Fn(usize) -> R + Sync,
{
    let next = AtomicUsize::new(0);
    let claim = || {
        let mut done: Vec<(usize, R)> = Vec::new();
        loop {
            let part = next.fetch_add(1, Ordering::Relaxed);
            if part >= parts {
                return done;
            }
            done.push((part, work(part)));
        }
    };
    let mut slots: Vec<Option<R>> = std::iter::repeat_with(|| None).take(parts).collect();
    std::thread::scope(|scope| {
        let claim = &claim;
        let workers: Vec<_> = (1..threads).map(|_| scope.spawn(claim)).collect();
        for (part, result) in claim() {
            slots[part] = Some(result);
        }
        for worker in workers {
            match worker.join() {
                Ok(done) => {
                    for (part, result) in done {
                        slots[part] = Some(result);
                    }
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    // Every part below `parts` was claimed exactly once.
    slots.into_iter().flatten().collect()
}

/// `items.iter().map(f).collect()`, computed by up to
/// `available_parallelism()` threads (at least `min_per_thread` items per
/// thread), which take contiguous parts of the items as they become free. A
/// panic in a worker is resumed here.
pub(crate) fn map_in_order<T, R, F>(items: &[T], min_per_thread: usize, f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    let threads = thread_count(items.len(), min_per_thread);
    if threads == 1 {
        return items.iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(threads * PARTS_PER_THREAD).max(1);
    let parts: Vec<&[T]> = items.chunks(chunk).collect();
    let done = run_parts(parts.len(), threads, |part| {
        parts[part].iter().map(&f).collect::<Vec<R>>()
    });
    let mut results: Vec<R> = Vec::with_capacity(items.len());
    for part in done {
        results.extend(part);
    }
    results
}

/// [`map_in_order`] for items that the workers consume.
pub(crate) fn map_in_order_owned<T, R, F>(items: Vec<T>, min_per_thread: usize, f: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync,
{
    let threads = thread_count(items.len(), min_per_thread);
    if threads == 1 {
        return items.into_iter().map(&f).collect();
    }
    let len = items.len();
    let chunk = len.div_ceil(threads * PARTS_PER_THREAD).max(1);
    let mut parts: Vec<Mutex<Vec<T>>> = Vec::with_capacity(len.div_ceil(chunk));
    let mut items = items.into_iter();
    while items.len() > 0 {
        parts.push(Mutex::new(items.by_ref().take(chunk).collect()));
    }
    let done = run_parts(parts.len(), threads, |part| {
        // Each part is claimed once, so its lock is never contended.
        let items = std::mem::take(&mut *parts[part].lock().unwrap_or_else(|e| e.into_inner()));
        items.into_iter().map(&f).collect::<Vec<R>>()
    });
    let mut results: Vec<R> = Vec::with_capacity(len);
    for part in done {
        results.extend(part);
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_input_order_for_any_size() {
        for len in [0, 1, 2, 3, 10, 1000] {
            let items: Vec<usize> = (0..len).collect();
            let doubled = map_in_order(&items, 1, |i| i * 2);
            assert_eq!(doubled, items.iter().map(|i| i * 2).collect::<Vec<_>>());
            for per_thread in [1, 3, 64] {
                let owned = map_in_order_owned(items.clone(), per_thread, |i| i * 2);
                assert_eq!(owned, doubled, "{len} items, {per_thread} per thread");
            }
        }
    }
}
