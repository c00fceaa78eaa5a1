//! A stream of rows read at a pace while they flow, rather than on every
//! row's wake-up.
//!
//! sqlx runs a SQLite connection on a thread of its own and hands each row
//! over a channel; a reader waiting on the channel is woken (a thread woken
//! and put back to sleep) for every row the query yields more slowly than the
//! reader takes it. Listing the 115,201 members of an `any` of four blocks
//! over 200,000 customers, which takes 240 ms to count, cost 480-714 ms of
//! CPU read row by row (2-4 µs a member to hand over) and 350-440 ms read
//! every millisecond, when the rows that arrived meanwhile are taken at once
//! (`cargo bench --bench segment_shapes`, CPU time, several runs).
//!
//! A stream is woken as usual until rows flow (at least [`FLOWING`] of them,
//! less than [`GAP`] apart on average): a short query (a page, a sample)
//! waits for no timer. While they flow, it is read at every tick of the
//! timer (1-2 ms, as tokio rounds up); a tick that finds fewer than
//! [`STILL_FLOWING`] rows makes it woken again, until [`FLOWING`] fresh rows
//! flow. Under tokio's paused time a flowing stream makes the clock jump
//! ahead: no test reads a SQLite store so.

use futures_util::Stream;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Rows a stream yields before it may be paced.
const FLOWING: u64 = 64;
/// The average gap between them under which they flow: 2,000 rows a second,
/// two or more a tick, where a tick costs about what a row's wake-up does.
/// At 50,000 rows a second, the members of an `all` whose lookups pass one
/// customer in seventeen (12,000 of 200,000, one every 21 µs) were each
/// woken for: 431-524 ms of CPU to list where counting took 226-287 ms.
const GAP: Duration = Duration::from_micros(500);
/// The rows a tick must find for the stream to stay paced.
const STILL_FLOWING: u64 = 2;

/// `inner`, woken by `inner` until its items flow, then read every `every`
/// while they do.
pub(super) struct Paced<S> {
    inner: S,
    every: Duration,
    /// The pause between two reads (made when first needed, so that the
    /// stream is made outside a runtime); waited for until it elapses.
    wait: Option<Pin<Box<Sleep>>>,
    /// Whether `inner` is read at a pace (polled with a waker that does
    /// nothing: the pause wakes the reader).
    paced: bool,
    /// When the first item came, and how many came since.
    first: Option<Instant>,
    items: u64,
    /// Items since `inner` last had nothing ready.
    run: u64,
}

impl<S> Paced<S> {
    pub(super) fn new(inner: S, every: Duration) -> Self {
        Self {
            inner,
            every,
            wait: None,
            paced: false,
            first: None,
            items: 0,
            run: 0,
        }
    }

    /// Whether the items came fast enough since `inner` last had nothing.
    fn flowing(&self) -> bool {
        if self.paced {
            return self.run >= STILL_FLOWING;
        }
        let elapsed = self.first.map(|t| t.elapsed()).unwrap_or_default();
        self.items >= FLOWING
            && elapsed < GAP.saturating_mul(u32::try_from(self.items).unwrap_or(u32::MAX))
    }
}

impl<S: Stream + Unpin> Stream for Paced<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = &mut *self;
        loop {
            if let Some(wait) = this.wait.as_mut()
                && wait.as_mut().poll(cx).is_pending()
            {
                return Poll::Pending;
            }
            let polled = if this.paced {
                Pin::new(&mut this.inner).poll_next(&mut Context::from_waker(Waker::noop()))
            } else {
                Pin::new(&mut this.inner).poll_next(cx)
            };
            match polled {
                Poll::Ready(Some(item)) => {
                    this.first.get_or_insert_with(Instant::now);
                    this.items += 1;
                    this.run += 1;
                    return Poll::Ready(Some(item));
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {
                    let flowing = this.flowing();
                    this.run = 0;
                    if flowing {
                        this.paced = true;
                        let until = Instant::now() + this.every;
                        match this.wait.as_mut() {
                            Some(wait) => wait.as_mut().reset(until),
                            None => this.wait = Some(Box::pin(tokio::time::sleep_until(until))),
                        }
                    } else if this.paced {
                        // Polled again with the reader's waker, to be woken;
                        // paced again only once fresh rows flow.
                        this.paced = false;
                        this.first = None;
                        this.items = 0;
                    } else {
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Paced;
    use futures_util::StreamExt as _;
    use std::time::Duration;

    /// Items sent from another thread: `count`, in bursts of `burst` items
    /// `pause` apart; the first `ahead` are in the channel before it is read.
    fn sent(
        count: u32,
        burst: u32,
        pause: Duration,
        ahead: u32,
    ) -> (
        impl futures_util::Stream<Item = u32> + Unpin,
        std::thread::JoinHandle<()>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::channel::<u32>(4096);
        for i in 0..ahead {
            let _ = tx.try_send(i);
        }
        let sender = std::thread::spawn(move || {
            for i in ahead..count {
                if i % burst == 0 {
                    std::thread::sleep(pause);
                }
                if tx.blocking_send(i).is_err() {
                    return;
                }
            }
        });
        let items = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|i| (i, rx))
        }));
        (items, sender)
    }

    /// Every item arrives, in order, whether items trickle (woken for each)
    /// or flow (paced), and the stream ends when the sender does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_item_arrives_in_order_and_the_stream_ends() {
        for (count, burst, pause) in [
            (20, 1, Duration::from_millis(2)),
            (20_000, 5_000, Duration::from_millis(5)),
            (3_000, 100, Duration::from_micros(300)),
        ] {
            let (items, sender) = sent(count, burst, pause, 0);
            let got: Vec<u32> = Paced::new(items, Duration::from_millis(1)).collect().await;
            assert_eq!(
                got,
                (0..count).collect::<Vec<_>>(),
                "{count} in bursts of {burst}"
            );
            assert!(sender.join().is_ok());
        }
    }

    /// A few items that trickle in are handed over as they come, never held
    /// back for a tick of the timer (an hour here): the stream is woken by them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_trickle_is_not_paced() {
        let (items, sender) = sent(10, 1, Duration::from_millis(1), 0);
        let mut s = Paced::new(items, Duration::from_secs(3600));
        let all = tokio::time::timeout(Duration::from_secs(60), async {
            let mut n = 0;
            while s.next().await.is_some() {
                n += 1;
            }
            n
        });
        assert_eq!(all.await.ok(), Some(10));
        assert!(!s.paced);
        assert!(sender.join().is_ok());
    }

    /// Items that come one by one, a tenth of a millisecond apart (as a
    /// query's rows come where one customer in many passes), are read at a
    /// pace once 64 have come, not woken for one by one: some are read so
    /// even where the machine is busy and the sender sleeps longer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_steady_flow_slower_than_the_reader_is_paced() {
        let (items, sender) = sent(2_000, 1, Duration::from_micros(100), 0);
        let mut s = Paced::new(items, Duration::from_millis(1));
        let (mut n, mut paced) = (0u32, 0u32);
        while let Some(i) = s.next().await {
            assert_eq!(i, n);
            n += 1;
            paced += u32::from(s.paced);
        }
        assert_eq!(n, 2_000);
        assert!(paced > 0, "none of 2,000 read at a pace");
        assert!(sender.join().is_ok());
    }

    /// Items that are all there at once, or come faster than they are read,
    /// arrive whole and in order; a reader that stops early drops the
    /// stream, and the sender sees it go.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flowing_items_arrive_in_order_and_a_reader_may_stop() {
        for (count, read) in [(4096, 4096), (1_000_000, 50_000)] {
            let (items, sender) = sent(count, 10_000, Duration::ZERO, 4096);
            let mut s = Paced::new(items, Duration::from_millis(1));
            let mut n = 0u32;
            while n < read
                && let Some(i) = s.next().await
            {
                assert_eq!(i, n);
                n += 1;
            }
            assert_eq!(n, read);
            drop(s);
            assert!(sender.join().is_ok());
        }
    }
}
