//! Running a request's work on its caller's task, and moving what is left
//! of it to a task of its own only when the caller stops waiting.
//!
//! A request's work answers the caller as soon as it has a reply, then
//! usually has more to do: settle the lease, emit the usage event, relay
//! the rest of a stream. It must finish even when the caller goes away
//! (a client disconnect drops the caller's future; so does a timeout).
//! Spawning the work up front guarantees that but costs every request a
//! hop to another task (a wake-up, often a context switch). Instead the
//! caller polls the work itself while it waits for the reply; when the
//! caller is done (answered, or dropped), whatever is left of the work is
//! spawned where it stands. Work that ends as it answers (the in-process
//! stores settle at once) never leaves the caller's task.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;

/// Where the work sends its reply.
pub(crate) struct ReplyTo<T>(oneshot::Sender<T>);

impl<T> ReplyTo<T> {
    pub(crate) fn send(self, reply: T) {
        // The caller may be gone; the work goes on regardless.
        let _ = self.0.send(reply);
    }
}

/// Runs `work` on the current task until it sends its reply, and returns
/// the reply (`None` when the work ended without one). What remains of
/// the work then runs on a task tracked by `tasks`, as it does when this
/// future is dropped before the reply.
pub(crate) async fn run<T, F>(tasks: &TaskTracker, work: impl FnOnce(ReplyTo<T>) -> F) -> Option<T>
where
    F: Future<Output = ()> + Send + 'static,
{
    let (sender, mut reply) = oneshot::channel();
    let mut work = Unfinished {
        work: Some(Box::pin(tasks.track_future(work(ReplyTo(sender))))),
    };
    std::future::poll_fn(|cx| {
        work.poll_here(cx);
        Pin::new(&mut reply).poll(cx)
    })
    .await
    .ok()
}

type BoxedWork = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Work polled by its caller until the caller is done with it.
struct Unfinished {
    work: Option<BoxedWork>,
}

impl Unfinished {
    fn poll_here(&mut self, cx: &mut std::task::Context<'_>) {
        if let Some(work) = &mut self.work
            && work.as_mut().poll(cx).is_ready()
        {
            self.work = None;
        }
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        let Some(work) = self.work.take() else {
            return;
        };
        // Outside a runtime (it is shutting down) the work cannot go on.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(work);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn work_that_ends_as_it_answers_is_never_spawned() {
        let tasks = TaskTracker::new();
        let finished = Arc::new(AtomicBool::new(false));
        let done = finished.clone();
        let reply = run(&tasks, |reply_to| async move {
            reply_to.send(7);
            done.store(true, Ordering::SeqCst);
        })
        .await;
        assert_eq!(reply, Some(7));
        // Finished by the time the caller has its reply, with no task left.
        assert!(finished.load(Ordering::SeqCst));
        assert!(tasks.is_empty());
    }

    #[tokio::test]
    async fn what_is_left_after_the_answer_finishes_on_its_own_task() {
        let tasks = TaskTracker::new();
        let (release, released) = oneshot::channel::<()>();
        let finished = Arc::new(AtomicBool::new(false));
        let done = finished.clone();
        let reply = run(&tasks, |reply_to| async move {
            reply_to.send("answer");
            let _ = released.await;
            done.store(true, Ordering::SeqCst);
        })
        .await;
        assert_eq!(reply, Some("answer"));
        assert_eq!(tasks.len(), 1);
        release.send(()).unwrap();
        tasks.close();
        tasks.wait().await;
        assert!(finished.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn work_goes_on_when_the_caller_gives_up_before_the_answer() {
        let tasks = TaskTracker::new();
        let finished = Arc::new(AtomicBool::new(false));
        let done = finished.clone();
        let waiting = run(&tasks, |reply_to: ReplyTo<()>| async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            reply_to.send(());
            done.store(true, Ordering::SeqCst);
        });
        let gave_up = tokio::time::timeout(Duration::from_millis(5), waiting).await;
        assert!(gave_up.is_err());
        assert!(!finished.load(Ordering::SeqCst));
        tasks.close();
        tasks.wait().await;
        assert!(finished.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn work_that_ends_without_answering_gives_none() {
        let tasks = TaskTracker::new();
        let reply = run(
            &tasks,
            |reply_to: ReplyTo<u8>| async move { drop(reply_to) },
        )
        .await;
        assert_eq!(reply, None);
    }
}
