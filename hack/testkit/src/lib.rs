//! Test support shared by the workspace's suites, so that every suite waits for a condition the
//! same way: poll at a short, fixed period until it holds, and fail naming what was awaited (and
//! the last value seen) once a deadline passes. A deadline, never an unbounded loop: a suite that
//! hangs in CI says nothing about what went wrong. And the benchmarks' Services ([`services`]),
//! network namespaces with a runtime inside ([`netns`]), and fixture builders on the real Service
//! and pool types for the integration tests ([`fixtures`]).

pub mod fixtures;
pub mod netns;
pub mod services;

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

/// How often a condition is polled: short against the waits it bounds (tens of ms to seconds),
/// long enough not to load the process under test.
pub const POLL: Duration = Duration::from_millis(20);

/// Polls `get` until `check` holds for its value and returns that value; panics after `within`
/// with `what` and the last value.
pub async fn wait_for<T, F, Fut>(what: &str, within: Duration, get: F, check: impl Fn(&T) -> bool) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = T>,
    T: Debug,
{
    wait_for_every(what, within, POLL, get, check).await
}

/// [`wait_for`] polling every `every`: the conformance suites, which may run against a real API
/// server, poll it less often.
pub async fn wait_for_every<T, F, Fut>(
    what: &str,
    within: Duration,
    every: Duration,
    get: F,
    check: impl Fn(&T) -> bool,
) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = T>,
    T: Debug,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let v = get().await;
        if check(&v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}; last: {v:#?}"
        );
        tokio::time::sleep(every).await;
    }
}

/// Polls `f` until it holds; panics after `within` with `what`.
pub async fn eventually(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out after {within:?} waiting for: {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// [`eventually`] for tests without a runtime: sleeps the thread between polls. Returns how long
/// the condition took to hold.
pub fn eventually_blocking(what: &str, within: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "timed out after {within:?} waiting for: {what}");
        std::thread::sleep(POLL);
    }
    start.elapsed()
}

/// Polls `f` until it returns `Some`, sleeping the thread between polls; `None` once `within`
/// passed (for callers that report the failure themselves).
pub fn poll_blocking<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[tokio::test]
    async fn wait_for_returns_the_first_value_that_passes() {
        let n = Cell::new(0);
        let v = wait_for(
            "n to reach 3",
            Duration::from_secs(5),
            || async { n.replace(n.get() + 1) + 1 },
            |v| *v >= 3,
        )
        .await;
        assert_eq!(v, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after 50ms waiting for never; last: false")]
    async fn wait_for_names_what_and_the_last_value_on_timeout() {
        wait_for("never", Duration::from_millis(50), || async { false }, |v| *v).await;
    }

    #[test]
    #[should_panic(expected = "waiting for: never")]
    fn eventually_blocking_fails_after_its_deadline() {
        eventually_blocking("never", Duration::from_millis(50), || false);
    }

    #[test]
    fn poll_blocking_gives_none_after_its_deadline_and_the_value_before() {
        assert_eq!(poll_blocking(Duration::from_millis(30), || None::<u8>), None);
        let mut calls = 0;
        assert_eq!(
            poll_blocking(Duration::from_secs(5), || {
                calls += 1;
                (calls == 2).then_some(calls)
            }),
            Some(2)
        );
    }
}
