//! A stream of rows read at a pace rather than on every row's wake-up.
//!
//! sqlx runs a SQLite connection on a thread of its own and hands each row
//! over a channel; a reader waiting on the channel is woken (a thread woken
//! and put back to sleep) for every row the query yields more slowly than the
//! reader takes it. Listing the 115,201 members of an `any` of four blocks
//! over 200,000 customers, which takes 240 ms to count, cost 480-714 ms of
//! CPU read row by row (2-4 µs a member to hand over) and 350-440 ms read
//! every millisecond, when the rows that arrived meanwhile are taken at once
//! (`cargo bench --bench segment_shapes`, CPU time, several runs). A query
//! that yields nothing for a while costs a wake-up a millisecond; a row
//! waits about a millisecond at most, and a reader takes at most the
//! connection's row buffer a millisecond (SQLite: 4,096 rows, more than it
//! lists).

use futures_util::Stream;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::time::Sleep;

/// `inner`, read when polled and then, while it has nothing ready, every
/// `every` (never woken by `inner` itself).
pub(super) struct Paced<S> {
    inner: S,
    every: Duration,
    /// Armed while `inner` had nothing ready.
    wait: Option<Pin<Box<Sleep>>>,
}

impl<S> Paced<S> {
    pub(super) fn new(inner: S, every: Duration) -> Self {
        Self {
            inner,
            every,
            wait: None,
        }
    }
}

impl<S: Stream + Unpin> Stream for Paced<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = &mut *self;
        loop {
            if let Some(wait) = this.wait.as_mut() {
                if wait.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.wait = None;
            }
            // Polled with a waker that does nothing: the wait wakes the reader.
            let mut quiet = Context::from_waker(Waker::noop());
            match Pin::new(&mut this.inner).poll_next(&mut quiet) {
                Poll::Ready(item) => return Poll::Ready(item),
                Poll::Pending => this.wait = Some(Box::pin(tokio::time::sleep(this.every))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Paced;
    use futures_util::StreamExt as _;
    use std::time::Duration;

    /// Every item arrives, in order, whether it comes at once or after a
    /// while from another thread, and the stream ends when the sender does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_item_arrives_in_order_and_the_stream_ends() {
        let (tx, rx) = tokio::sync::mpsc::channel::<u32>(8);
        let sender = std::thread::spawn(move || {
            for i in 0..200u32 {
                if i % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
                if tx.blocking_send(i).is_err() {
                    return;
                }
            }
        });
        let items = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|i| (i, rx))
        }));
        let got: Vec<u32> = Paced::new(items, Duration::from_millis(1)).collect().await;
        assert_eq!(got, (0..200).collect::<Vec<_>>());
        assert!(sender.join().is_ok());
    }
}
