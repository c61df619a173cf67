//! The queue and writers of a group commit (docs/ARCHITECTURE.md, "Group commit" and "Credit
//! groups"): jobs that wait at the same moment are handed to one writer together, which commits
//! them in one database transaction. bank1's debits and bank2's credits both use it; what a
//! group does, and how each job gets its own answer, is theirs.
//!
//! Nothing waits to fill a group: a writer takes whatever is queued when it is free (at most
//! `max`), so a lone job commits as soon as it would alone, and a group grows only while the
//! writers are busy.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, Mutex};

use crate::infra::db::Engine;

/// Writers on MySQL/MariaDB, each committing its own groups on its own connection.
const MYSQL_WRITERS: usize = 4;

/// How many writers fit the database: one on SQLite (it has one writer connection), four on
/// MySQL.
fn writers(engine: Engine) -> usize {
    match engine {
        Engine::Sqlite => 1,
        Engine::MySql => MYSQL_WRITERS,
    }
}

/// Where jobs wait for their group; cheap to clone.
pub struct Groups<J> {
    queue: mpsc::UnboundedSender<J>,
}

impl<J> Clone for Groups<J> {
    fn clone(&self) -> Self {
        Self { queue: self.queue.clone() }
    }
}

impl<J: Send + 'static> Groups<J> {
    /// Starts the writer tasks that fit `engine`'s database on the current Tokio runtime: one
    /// on SQLite (it has one writer connection), four on MySQL. Each takes every job queued (at
    /// most `max`), hands them to `commit` as one group, waits for it, and again. They stop when
    /// every [`Groups`] handle is gone. `max` 1 or less turns groups off: `None`, and each job
    /// commits alone, as its caller does it.
    pub fn start<F, Fut>(engine: Engine, max: usize, commit: F) -> Option<Self>
    where
        F: Fn(Vec<J>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if max <= 1 {
            return None;
        }
        Some(Self::spawn(writers(engine), max, commit))
    }

    fn spawn<F, Fut>(writers: usize, max: usize, commit: F) -> Self
    where
        F: Fn(Vec<J>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (queue, jobs) = mpsc::unbounded_channel();
        let jobs = Arc::new(Mutex::new(jobs));
        let commit = Arc::new(commit);
        for _ in 0..writers {
            let (jobs, commit) = (Arc::clone(&jobs), Arc::clone(&commit));
            tokio::spawn(async move {
                let mut group = Vec::with_capacity(max);
                loop {
                    if jobs.lock().await.recv_many(&mut group, max).await == 0 {
                        return; // every sender is gone
                    }
                    commit(std::mem::take(&mut group)).await;
                }
            });
        }
        Self { queue }
    }

    /// Queues `job` for the next group; gives it back when no writer runs any more.
    pub fn send(&self, job: J) -> Result<(), J> {
        self.queue.send(job).map_err(|e| e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    #[tokio::test]
    async fn jobs_queued_while_the_writer_is_busy_commit_as_one_group() {
        let (release, held) = oneshot::channel::<()>();
        let held = Arc::new(Mutex::new(Some(held)));
        let (sizes, mut seen) = mpsc::unbounded_channel();
        let groups = Groups::spawn(1, 32, move |group: Vec<u32>| {
            let (held, sizes) = (Arc::clone(&held), sizes.clone());
            async move {
                sizes.send(group).unwrap();
                // The first group holds the writer until released.
                if let Some(held) = held.lock().await.take() {
                    let _ = held.await;
                }
            }
        });
        groups.send(0).unwrap();
        assert_eq!(seen.recv().await.unwrap(), vec![0]);
        for job in 1..=5 {
            groups.send(job).unwrap();
        }
        release.send(()).unwrap();
        assert_eq!(seen.recv().await.unwrap(), vec![1, 2, 3, 4, 5], "the jobs that waited, in one group");
    }
}
