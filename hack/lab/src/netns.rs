//! Running async code inside a lab namespace from a process in the root namespace: the suites'
//! [`NsRuntime`] (one thread that entered the namespace, with a tokio runtime there), so that the lab
//! and the tests that drive it run code in a namespace the same way.

pub use ferrolb_testkit::netns::{NsError, NsRuntime};
