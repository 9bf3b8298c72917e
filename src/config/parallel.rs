//! Spreading independent work over a few `std` threads.
//!
//! This is the only concurrency in the pure core (`config`, `render`): plain
//! scoped threads over disjoint slices, no runtime, no shared mutable state,
//! and results in input order, so the output is the same as a sequential
//! run whatever the number of threads.

use std::num::NonZeroUsize;

/// `items.iter().map(f).collect()`, computed by up to
/// `available_parallelism()` threads, each taking a contiguous part of at
/// least `min_per_thread` items. A panic in a worker is resumed here.
pub(crate) fn map_in_order<T, R, F>(items: &[T], min_per_thread: usize, f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    let threads = std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(items.len() / min_per_thread.max(1))
        .max(1);
    if threads == 1 {
        return items.iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let (first, rest) = items.split_at(chunk);
    std::thread::scope(|scope| {
        let f = &f;
        let workers: Vec<_> = rest
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<R>>()))
            .collect();
        let mut results: Vec<R> = Vec::with_capacity(items.len());
        results.extend(first.iter().map(f));
        for worker in workers {
            match worker.join() {
                Ok(part) => results.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        results
    })
}

/// [`map_in_order`] for items that the workers consume.
pub(crate) fn map_in_order_owned<T, R, F>(mut items: Vec<T>, min_per_thread: usize, f: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync,
{
    let threads = std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(items.len() / min_per_thread.max(1))
        .max(1);
    if threads == 1 {
        return items.into_iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let mut parts: Vec<Vec<T>> = Vec::with_capacity(threads);
    while items.len() > chunk {
        let rest = items.split_off(chunk);
        parts.push(std::mem::replace(&mut items, rest));
    }
    parts.push(items);
    let mut parts = parts.into_iter();
    let first = parts.next().unwrap_or_default();
    std::thread::scope(|scope| {
        let f = &f;
        let workers: Vec<_> = parts
            .map(|part| scope.spawn(move || part.into_iter().map(f).collect::<Vec<R>>()))
            .collect();
        let mut results: Vec<R> = first.into_iter().map(f).collect();
        for worker in workers {
            match worker.join() {
                Ok(part) => results.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        results
    })
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
