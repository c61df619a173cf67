//! The queue and writers of a group commit (docs/ARCHITECTURE.md, "Group commit" and "Credit
//! groups"): jobs that wait at the same moment are handed to one writer together, which commits
//! them in one database transaction. bank1's debits and bank2's credits both use it; what a
//! group does, and how each job gets its own answer, is theirs.
//!
//! Nothing waits to fill a group: a writer takes whatever is queued when it is free (at most
//! `max`), so a lone job commits as soon as it would alone, and a group grows only while the
//! writers are busy. A writer that has committed a group may take the next one that is already
//! waiting itself ([`Next`]), for example to commit it on the connection it still holds.

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
    /// most `max`), hands them to `commit` as one group, waits for it, and again. `commit` may
    /// also take the groups queued behind its own from its [`Next`]. The writers stop when
    /// every [`Groups`] handle is gone. `max` 1 or less turns groups off: `None`, and each job
    /// commits alone, as its caller does it.
    pub fn start<F, Fut>(engine: Engine, max: usize, commit: F) -> Option<Self>
    where
        F: Fn(Vec<J>, Next<J>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if max <= 1 {
            return None;
        }
        Some(Self::with_writers(writers(engine), max, commit))
    }

    /// Starts `writers` tasks, as [`Groups::start`] does, whatever the jobs are (bank2's
    /// questions to bank1 are merged this way too, [`crate::service::proofs`]).
    pub fn with_writers<F, Fut>(writers: usize, max: usize, commit: F) -> Self
    where
        F: Fn(Vec<J>, Next<J>) -> Fut + Send + Sync + 'static,
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
                    let next = Next { jobs: Arc::clone(&jobs), max };
                    commit(std::mem::take(&mut group), next).await;
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

/// The queue as a writer sees it while it commits a group: the group waiting behind.
pub struct Next<J> {
    jobs: Arc<Mutex<mpsc::UnboundedReceiver<J>>>,
    max: usize,
}

impl<J> Next<J> {
    /// The jobs queued right now (at most `max`), as the next group; `None` when none is queued,
    /// or when another writer is waiting for jobs (it takes them: the group is its).
    pub fn take(&self) -> Option<Vec<J>> {
        let mut jobs = self.jobs.try_lock().ok()?;
        let mut group = Vec::new();
        while group.len() < self.max {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        (!group.is_empty()).then_some(group)
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
        let groups = Groups::with_writers(1, 32, move |group: Vec<u32>, _| {
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

    #[tokio::test]
    async fn a_writer_takes_the_groups_queued_behind_its_own_at_most_max_each() {
        let (release, held) = oneshot::channel::<()>();
        let held = Arc::new(Mutex::new(Some(held)));
        let (taken, mut seen) = mpsc::unbounded_channel();
        let groups = Groups::with_writers(1, 3, move |group: Vec<u32>, next: Next<u32>| {
            let (held, taken) = (Arc::clone(&held), taken.clone());
            async move {
                taken.send(group).unwrap();
                // The first group holds the writer until released, then takes what queued.
                if let Some(held) = held.lock().await.take() {
                    let _ = held.await;
                    while let Some(group) = next.take() {
                        taken.send(group).unwrap();
                    }
                    taken.send(Vec::new()).unwrap();
                }
            }
        });
        groups.send(0).unwrap();
        assert_eq!(seen.recv().await.unwrap(), vec![0]);
        for job in 1..=5 {
            groups.send(job).unwrap();
        }
        release.send(()).unwrap();
        assert_eq!(seen.recv().await.unwrap(), vec![1, 2, 3]);
        assert_eq!(seen.recv().await.unwrap(), vec![4, 5]);
        assert_eq!(seen.recv().await.unwrap(), Vec::<u32>::new(), "then none is left");
    }
}
