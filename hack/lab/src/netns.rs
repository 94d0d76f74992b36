//! Running async code inside a lab namespace from a process in the root namespace.
//!
//! A socket belongs to the network namespace of the thread that creates it. [`NsRuntime`] owns one
//! thread that has entered a lab namespace (`setns`, which affects only that thread) and runs a
//! current-thread tokio runtime there: every future given to it, and every task those futures spawn
//! (a `kube::Client`'s connections included), opens its sockets inside the namespace. The calling
//! process stays in the root namespace, which never sends to lab addresses.

use anyhow::{Context, Result, anyhow};
use std::future::Future;
use std::pin::Pin;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A tokio runtime on a thread inside a network namespace. Dropping it stops the thread (after the
/// futures it runs finish or are cancelled).
#[derive(Debug)]
pub struct NsRuntime {
    ns: String,
    jobs: Option<tokio::sync::mpsc::UnboundedSender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NsRuntime {
    /// Starts the thread and enters namespace `ns` (a name under `/var/run/netns`).
    pub fn new(ns: &str) -> Result<Self> {
        let path = format!("/var/run/netns/{ns}");
        let file =
            std::fs::File::open(&path).with_context(|| format!("opening {path} (does {ns} exist?)"))?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        let name = ns.to_string();
        let thread = std::thread::Builder::new()
            .name(format!("netns-{ns}"))
            .spawn(move || {
                let entered = nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .with_context(|| format!("entering network namespace {name}"));
                let rt = entered.and_then(|()| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .context("building a tokio runtime")
                });
                let rt = match rt {
                    Ok(rt) => {
                        let _ = ready_tx.send(Ok(()));
                        rt
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                drop(file);
                rt.block_on(async move {
                    while let Some(job) = rx.recv().await {
                        tokio::spawn(job);
                    }
                });
            })
            .context("spawning a thread")?;
        ready_rx.recv().map_err(|_| anyhow!("namespace thread for {ns} died"))??;
        Ok(Self { ns: ns.to_string(), jobs: Some(tx), thread: Some(thread) })
    }

    /// The namespace this runtime's sockets live in.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// Runs `fut` inside the namespace and waits for its output (from async code).
    pub async fn run<F>(&self, fut: F) -> Result<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::pin(async move {
            let _ = tx.send(fut.await);
        });
        self.jobs
            .as_ref()
            .and_then(|j| j.send(job).ok())
            .ok_or_else(|| anyhow!("runtime in {} has stopped", self.ns))?;
        rx.await.map_err(|_| anyhow!("task in {} was cancelled (panicked?)", self.ns))
    }

    /// Runs `fut` inside the namespace and blocks the calling thread until it finishes. Must not be
    /// called from inside an async runtime (use [`NsRuntime::run`] there).
    pub fn block_on<F>(&self, fut: F) -> Result<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        futures::executor::block_on(self.run(fut))
    }
}

impl Drop for NsRuntime {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
