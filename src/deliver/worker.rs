//! The delivery worker: claims due outbox rows, sends them with bounded
//! concurrency, and writes each outcome within milliseconds (group commits).

use super::DeliverError;
use super::email::Mailer;
use super::payload::{Subject, email_templates, webhook_body};
use super::retry::{Attempt, next_delay};
use super::webhook::{DEFAULT_TIMEOUT, Signer, WebhookSender};
use crate::clock::Clock;
use crate::config::DeliveryConfig;
use crate::model::{Communication, Customer, Delivery, Invoice, Segment};
use crate::plan::{Decoded, Kind, Undecodable, Version};
use crate::store::outbox::{Claimed, Mark};
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Counts of what a drain did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub sent: u64,
    /// Failed this time, to be tried again later.
    pub retrying: u64,
    /// Failed for good (e.g. HTTP 400).
    pub failed: u64,
    /// Failed on the last attempt of the schedule.
    pub dead: u64,
}

impl Tally {
    fn add(&mut self, m: &Mark) {
        match m {
            Mark::Sent => self.sent += 1,
            Mark::Retry { .. } => self.retrying += 1,
            Mark::Failed { .. } => self.failed += 1,
            Mark::Dead { .. } => self.dead += 1,
        }
    }
}

/// How long a finished outcome may wait to be written with others: the marker
/// writes at most once per this, so a kill loses at most this long's outcomes
/// besides the requests in flight.
const MARK_EVERY: std::time::Duration = std::time::Duration::from_millis(5);
/// The most outcomes written in one transaction.
const MARK_MAX: usize = 512;
/// The first and the longest wait before writing outcomes again after a failed write.
const MARK_RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(50);
const MARK_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(2);
/// How much longer than a lease outcomes are tried once every request has
/// finished, before the drain gives up on them (their rows' leases expire).
const MARK_GIVE_UP: std::time::Duration = std::time::Duration::from_secs(60);

/// Drains started by this process, to name each drain's claims.
static DRAINS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The guarded value, even if a holder panicked.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A claimed batch with the customers and invoices its rows name.
struct Batch {
    rows: Vec<Claimed>,
    customers: HashMap<String, Customer>,
    invoices: HashMap<String, Invoice>,
    /// When the claim's lease of these rows ends, unless renewed.
    leased_until: tokio::time::Instant,
}

/// The applied communications by name, or why one does not read back.
type Comms = HashMap<String, Result<Loaded, Undecodable>>;

/// An applied communication, ready to send.
struct Loaded {
    comm: Communication,
    segment_description: Option<String>,
    templates: BTreeMap<String, String>,
    signer: Option<Result<Signer, DeliverError>>,
}

pub type Env = dyn Fn(&str) -> Option<String> + Send + Sync;

pub struct Worker<'a> {
    pub store: &'a dyn Store,
    pub config: DeliveryConfig,
    /// Who claims rows (`host:pid:…`).
    pub me: String,
    webhook: WebhookSender,
    mailer: Mailer,
    env: &'a Env,
    /// The instants claims, leases and outcomes are stamped with, and the
    /// spread of retry delays.
    clock: Arc<dyn Clock>,
}

impl<'a> Worker<'a> {
    pub fn new(
        store: &'a dyn Store,
        config: DeliveryConfig,
        me: String,
        env: &'a Env,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, DeliverError> {
        Ok(Self {
            store,
            webhook: WebhookSender::new()?,
            mailer: Mailer::new(&config)?,
            config,
            me,
            env,
            clock,
        })
    }

    /// The applied communications, with the version of the definitions read.
    /// One that does not read back (nor its segment) is logged, and its rows
    /// are retried later with that error rather than failed as not applied.
    async fn load(&self) -> Result<(Version, Comms), StoreError> {
        let applied = self.store.applied().await?;
        let mut out = HashMap::new();
        for a in applied.of_kind(Kind::Communication) {
            let loaded = match a.decoded() {
                // Only the segment's description is used.
                Ok(Decoded::Communication(comm)) => applied
                    .segment(comm.segment.as_str())
                    .map(|segment| self.loaded(comm, segment, &a.def.templates)),
                Ok(Decoded::Segment(_)) => continue,
                Err(e) => Err(e),
            };
            if let Err(e) = &loaded {
                tracing::error!(error = %e, "cannot send {}'s deliveries", a.def.name);
            }
            out.insert(a.def.name.to_string(), loaded);
        }
        Ok((applied.version, out))
    }

    fn loaded(
        &self,
        comm: &Communication,
        segment: Option<&Segment>,
        templates: &BTreeMap<String, String>,
    ) -> Loaded {
        let signer = match &comm.delivery {
            Delivery::Webhook(w) => Some(Signer::from_env(&w.secret_env, self.env)),
            Delivery::Email(_) => None,
        };
        Loaded {
            segment_description: segment.and_then(|s| s.description.clone()),
            templates: templates.clone(),
            comm: comm.clone(),
            signer,
        }
    }

    /// Sends every due row (of one run, when given) until none is due; calls
    /// `progress` after each write of outcomes. Three parts run at once: a claimer
    /// that keeps one batch claimed ahead, a sender that keeps `concurrency`
    /// requests in flight across batches, and a marker that writes each finished
    /// outcome within [`MARK_EVERY`], many in one transaction. A kill therefore
    /// re-sends at most the requests in flight and the outcomes of the marker's
    /// open window. Once `stop` is set nothing more is claimed or started: the
    /// requests in flight finish, their outcomes are written, and rows claimed
    /// but not started go back to pending. A write of outcomes that fails is
    /// tried again (with backoff) without stopping the sends; after failing for
    /// longer than a lease, the drain stops as if stopped and then reports it.
    pub async fn drain(
        &self,
        run_id: Option<&str>,
        mut progress: impl FnMut(&Tally),
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<Tally, StoreError> {
        let limit = i64::from(self.config.concurrency.max(1)) * 16;
        let concurrency = usize::try_from(self.config.concurrency)
            .unwrap_or(16)
            .max(1);
        let lease = chrono::TimeDelta::from_std(self.config.lease)
            .unwrap_or(chrono::TimeDelta::seconds(60));
        // The lease is renewed while rows are sent, so a slow receiver never lets
        // another sender claim rows this one is still sending.
        let renew_every = (self.config.lease / 3).max(std::time::Duration::from_millis(200));
        // Each drain claims under its own name, so a later drain of this process
        // may take over the expired rows of one that was abandoned, while the
        // expired tier never hands a drain rows it still holds.
        let me = &format!("{}:{}", DRAINS.fetch_add(1, Ordering::Relaxed), self.me);
        let (batches, mut claimed) = tokio::sync::mpsc::channel::<(Arc<Comms>, Arc<Batch>)>(1);
        // This sender's writes (claims, outcomes, renewals) take turns here rather
        // than in the database, where a writer waiting on SQLite's lock sleeps.
        let writes = &tokio::sync::Mutex::new(());
        let (finished, mut outcomes) = tokio::sync::mpsc::unbounded_channel::<(i64, Mark)>();
        // Set when outcomes could not be written for longer than a lease: nothing
        // more is claimed or started, and what is in flight still finishes.
        let halted = &AtomicBool::new(false);
        let stopped = || stop() || halted.load(Ordering::Relaxed);
        // Rows claimed and not yet started: handed back once the drain ends.
        let unsent = &std::sync::Mutex::new(HashSet::<i64>::new());
        // When the last successful renewal's lease ends (none yet: a batch's own
        // claim sets its rows' lease).
        let renewed_until = &std::sync::Mutex::new(None::<tokio::time::Instant>);

        // Ends at the first empty claim; an error ends it too, and is reported
        // once what was already claimed is sent and marked.
        let claimer = async move {
            // Loaded with the first batch (an idle pass reads no definitions), and
            // again once an apply changed them: a communication applied or
            // changed since is sent as it now is, never failed as not applied.
            let mut comms: Option<(Version, Arc<Comms>)> = None;
            loop {
                if stopped() {
                    return None;
                }
                let (claimed, leased_until) = {
                    let _turn = writes.lock().await;
                    let leased_until = tokio::time::Instant::now() + self.config.lease;
                    let now = self.clock.now();
                    let rows = self.store.claim(me, now, now + lease, limit, run_id).await;
                    (rows, leased_until)
                };
                let rows = match claimed {
                    Ok(rows) if rows.is_empty() => return None,
                    Ok(rows) => rows,
                    Err(e) => return Some(e),
                };
                lock(unsent).extend(rows.iter().map(|r| r.id));
                let current = match &comms {
                    None => None,
                    Some((loaded_version, c)) => match self.store.version().await {
                        Ok(v) if v == *loaded_version => Some(c.clone()),
                        Ok(_) => None,
                        Err(e) => return Some(e),
                    },
                };
                let loaded = match current {
                    Some(c) => c,
                    None => match self.load().await {
                        Ok((v, c)) => comms.insert((v, Arc::new(c))).1.clone(),
                        Err(e) => return Some(e),
                    },
                };
                let batch = match self.batch(rows, leased_until).await {
                    Ok(b) => b,
                    Err(e) => return Some(e),
                };
                if batches.send((loaded, Arc::new(batch))).await.is_err() {
                    return None;
                }
            }
        };
        let sender = async move {
            let rows = futures_util::stream::unfold(&mut claimed, |claimed| async move {
                claimed.recv().await.map(|b| (b, claimed))
            })
            .flat_map(|(comms, batch)| {
                futures_util::stream::iter(
                    (0..batch.rows.len()).map(move |i| (comms.clone(), batch.clone(), i)),
                )
            })
            // Once stopped, rows not yet started stay unsent (and are released).
            .take_while(|_| std::future::ready(!stopped()))
            // A row whose lease has run out may be another sender's by now: it is
            // left unsent rather than sent twice.
            .filter(|(_, batch, i)| {
                let until =
                    lock(renewed_until).map_or(batch.leased_until, |r| r.max(batch.leased_until));
                let go = tokio::time::Instant::now() < until;
                if go {
                    lock(unsent).remove(&batch.rows[*i].id);
                }
                std::future::ready(go)
            });
            rows.map(|(comms, batch, i)| async move {
                self.send_one(&comms, &batch, &batch.rows[i]).await
            })
            .buffer_unordered(concurrency)
            .for_each(|outcome| {
                // The marker keeps receiving until the sender ends.
                let _ = finished.send(outcome);
                std::future::ready(())
            })
            .await;
        };
        let marker = async {
            let mut tally = Tally::default();
            let mut pending = Vec::new();
            let mut last = tokio::time::Instant::now();
            let mut closed = false;
            let mut failing_since: Option<tokio::time::Instant> = None;
            let mut backoff = MARK_RETRY_FIRST;
            let mut halting = None;
            loop {
                if pending.is_empty() {
                    match outcomes.recv().await {
                        Some(first) => pending.push(first),
                        None => break,
                    }
                }
                let window = last + MARK_EVERY;
                while !closed && pending.len() < MARK_MAX {
                    tokio::select! {
                        more = outcomes.recv() => match more {
                            Some(m) => pending.push(m),
                            None => closed = true,
                        },
                        () = tokio::time::sleep_until(window) => break,
                    }
                }
                last = tokio::time::Instant::now();
                let written = {
                    let _turn = writes.lock().await;
                    self.store.mark(me, &pending, self.clock.now()).await
                };
                match written {
                    Ok(()) => {
                        failing_since = None;
                        backoff = MARK_RETRY_FIRST;
                        for (_, m) in pending.drain(..) {
                            tally.add(&m);
                        }
                        progress(&tally);
                    }
                    // The outcomes are kept and written again: each update is
                    // guarded by this sender's claim, so a late write is safe.
                    Err(e) => {
                        let failing = failing_since.get_or_insert(last).elapsed();
                        if failing > self.config.lease {
                            halted.store(true, Ordering::Relaxed);
                        }
                        if closed && failing > self.config.lease + MARK_GIVE_UP {
                            return Err(e);
                        }
                        tracing::warn!(error = %crate::error::chain(&e), outcomes = pending.len(), "writing delivery outcomes failed; retrying");
                        if halted.load(Ordering::Relaxed) {
                            halting = Some(e);
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MARK_RETRY_MAX);
                    }
                }
            }
            // Halted: what was finished is written, and the failure is reported.
            match halting {
                Some(e) => Err(e),
                None => Ok(tally),
            }
        };

        let finished_all = tokio_util::sync::CancellationToken::new();
        let work = async {
            let (claim_error, (), marked) = tokio::join!(claimer, sender, marker);
            finished_all.cancel();
            (claim_error, marked)
        };
        // Renewals run beside the work, never inside it: a renewal waiting there
        // for the marker's open transaction would stop that transaction too.
        let renewing = async {
            loop {
                tokio::select! {
                    () = finished_all.cancelled() => break,
                    () = tokio::time::sleep(renew_every) => {
                        let _turn = writes.lock().await;
                        let started = tokio::time::Instant::now();
                        let until = self.clock.now() + lease;
                        match self.store.renew(me, until).await {
                            Ok(()) => *lock(renewed_until) = Some(started + self.config.lease),
                            Err(e) => tracing::warn!(error = %crate::error::chain(&e), "renewing the delivery lease failed"),
                        }
                    }
                }
            }
        };
        let ((claim_error, marked), ()) = tokio::join!(work, renewing);
        // Rows claimed and never started go back to pending, as if never claimed.
        let left: Vec<i64> = lock(unsent).drain().collect();
        let released = if left.is_empty() {
            Ok(())
        } else {
            self.store.release(me, &left, self.clock.now()).await
        };
        let tally = marked?;
        match claim_error {
            Some(e) => Err(e),
            None => released.map(|()| tally),
        }
    }

    /// The customers and invoices a claimed batch names, read once for it.
    async fn batch(
        &self,
        rows: Vec<Claimed>,
        leased_until: tokio::time::Instant,
    ) -> Result<Batch, StoreError> {
        let mut customer_ids: Vec<String> = rows.iter().map(|r| r.customer_id.clone()).collect();
        customer_ids.sort();
        customer_ids.dedup();
        let mut invoice_ids: Vec<String> = rows
            .iter()
            .flat_map(|r| r.invoice_ids.iter().cloned())
            .collect();
        invoice_ids.sort();
        invoice_ids.dedup();
        let customers = self
            .store
            .customers(&customer_ids)
            .await?
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect();
        let invoices = self
            .store
            .invoices(&invoice_ids)
            .await?
            .into_iter()
            .map(|i| (i.id.clone(), i))
            .collect();
        Ok(Batch {
            rows,
            customers,
            invoices,
            leased_until,
        })
    }

    async fn send_one(&self, comms: &Comms, batch: &Batch, row: &Claimed) -> (i64, Mark) {
        let started = std::time::Instant::now();
        let attempt = self
            .attempt(comms, &batch.customers, &batch.invoices, row)
            .await;
        let channel = comms
            .get(&row.communication)
            .and_then(|l| l.as_ref().ok())
            .map_or("unknown", |l| l.comm.delivery.channel().as_str());
        metrics::histogram!("segd_delivery_duration_seconds", "channel" => channel)
            .record(started.elapsed().as_secs_f64());
        let mark = self.mark(row, attempt);
        let result = match &mark {
            Mark::Sent => "sent",
            Mark::Retry { .. } => "retry",
            Mark::Failed { .. } => "failed",
            Mark::Dead { .. } => "dead",
        };
        metrics::counter!("segd_deliveries_total", "channel" => channel, "result" => result)
            .increment(1);
        (row.id, mark)
    }

    fn mark(&self, row: &Claimed, attempt: Attempt) -> Mark {
        match attempt {
            Attempt::Sent => Mark::Sent,
            Attempt::Permanent { error } => Mark::Failed { error },
            Attempt::Retry { error, retry_after } => {
                match next_delay(
                    row.attempts,
                    &self.config.retry_schedule,
                    retry_after,
                    self.clock.fraction(),
                ) {
                    Some(d) => Mark::Retry {
                        // Retry steps are at most 10 years (validated); the
                        // latest time stands for "never" beyond that.
                        at: chrono::TimeDelta::from_std(d)
                            .ok()
                            .and_then(|d| self.clock.now().checked_add_signed(d))
                            .unwrap_or(DateTime::<Utc>::MAX_UTC),
                        error,
                    },
                    None => Mark::Dead {
                        error: format!("{error} (after {} attempts)", row.attempts),
                    },
                }
            }
        }
    }

    async fn attempt(
        &self,
        comms: &Comms,
        customers: &HashMap<String, Customer>,
        invoices: &HashMap<String, Invoice>,
        row: &Claimed,
    ) -> Attempt {
        let loaded = match comms.get(&row.communication) {
            Some(Ok(loaded)) => loaded,
            // Read back once applied again: tried again later.
            Some(Err(e)) => {
                return Attempt::Retry {
                    error: e.to_string(),
                    retry_after: None,
                };
            }
            None => {
                return Attempt::Permanent {
                    error: format!("communication {} is no longer applied", row.communication),
                };
            }
        };
        let Some(customer) = customers.get(&row.customer_id) else {
            return Attempt::Permanent {
                error: format!("customer {} no longer exists", row.customer_id),
            };
        };
        let invs: Vec<Invoice> = row
            .invoice_ids
            .iter()
            .filter_map(|i| invoices.get(i).cloned())
            .collect();
        let subject = Subject {
            key: &row.key,
            communication: &loaded.comm,
            segment_description: loaded.segment_description.as_deref(),
            occurred_at: row.occurred_at,
            customer,
            invoices: &invs,
        };
        match &loaded.comm.delivery {
            Delivery::Webhook(w) => {
                let signer = match &loaded.signer {
                    Some(Ok(s)) => s,
                    Some(Err(e)) => {
                        return Attempt::Retry {
                            error: crate::error::chain(e),
                            retry_after: None,
                        };
                    }
                    None => {
                        return Attempt::Permanent {
                            error: "no signer for a webhook".into(),
                        };
                    }
                };
                let timeout = w
                    .timeout
                    .map_or(DEFAULT_TIMEOUT, crate::model::Duration::std);
                self.webhook
                    .send(&w.url, signer, &row.key, webhook_body(&subject), timeout)
                    .await
            }
            Delivery::Email(e) => {
                let job = match email_templates(e, &loaded.templates, &subject) {
                    Ok(job) => job,
                    Err(e) => {
                        return Attempt::Permanent {
                            error: crate::error::chain(&e),
                        };
                    }
                };
                // Rendering is CPU-bound: off the runtime's threads, outside any
                // transaction, within the renderer's bounds and RENDER_TIMEOUT. A
                // render given up on keeps its permit until its thread ends.
                let Ok(permit) = RENDERS.acquire().await else {
                    return Attempt::Permanent {
                        error: "rendering failed: no render threads".to_owned(),
                    };
                };
                let render = tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    job.render()
                });
                let rendered = match tokio::time::timeout(RENDER_TIMEOUT, render).await {
                    Ok(Ok(r)) => r.map_err(|e| crate::error::chain(&e)),
                    Ok(Err(e)) => Err(format!("rendering failed: {e}")),
                    Err(_) => Err(format!(
                        "template render exceeded its time limit ({}s)",
                        RENDER_TIMEOUT.as_secs()
                    )),
                };
                match rendered {
                    Ok(m) => {
                        self.mailer
                            .send(
                                &row.key,
                                &e.from,
                                customer.email.as_deref(),
                                &m.subject,
                                m.body,
                            )
                            .await
                    }
                    Err(error) => Attempt::Permanent { error },
                }
            }
        }
    }
}

/// The longest one email render may take before its delivery fails for good.
const RENDER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The most email renders running at once in this process, counting those
/// given up on after [`RENDER_TIMEOUT`] whose threads have not ended yet.
const RENDER_MAX_THREADS: usize = 8;
static RENDERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(RENDER_MAX_THREADS);
