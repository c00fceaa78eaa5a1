//! `-v`: what a command did, phase by phase: how long each took and how many
//! database queries it ran (counted from the driver's one event per statement).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::{Layer, filter::Targets};

/// The phases done so far; inert unless made with `on`.
pub struct Phases {
    queries: Option<Arc<AtomicU64>>,
    since: Instant,
    counted: u64,
    done: Vec<String>,
}

impl Phases {
    /// With `on`, starts counting the queries of this process.
    pub fn start(on: bool) -> Self {
        let queries = on.then(|| {
            let queries = Arc::new(AtomicU64::new(0));
            let counter = Counter(queries.clone())
                .with_filter(Targets::new().with_target("sqlx::query", tracing::Level::TRACE));
            // Only when no other subscriber is set (none is, outside the daemon).
            let _ = tracing::subscriber::set_global_default(
                tracing_subscriber::registry().with(counter),
            );
            queries
        });
        Self {
            queries,
            since: Instant::now(),
            counted: 0,
            done: Vec::new(),
        }
    }

    /// Ends the phase `name`, begun when the last one ended.
    pub fn end(&mut self, name: &str) {
        let Some(queries) = &self.queries else {
            return;
        };
        let now = queries.load(Ordering::Relaxed);
        let ran = now - self.counted;
        let took = self.since.elapsed().as_millis();
        self.done.push(match ran {
            0 => format!("{name} {took} ms"),
            1 => format!("{name} 1 query {took} ms"),
            n => format!("{name} {n} queries {took} ms"),
        });
        self.counted = now;
        self.since = Instant::now();
    }

    /// `COMMAND: phase 3 ms, phase 1 query 2 ms, …` on stderr.
    pub fn report(&self, command: &str) {
        if self.queries.is_some() {
            eprintln!("{command}: {}", self.done.join(", "));
        }
    }
}

/// Counts the driver's statement events.
struct Counter(Arc<AtomicU64>);

impl<S: tracing::Subscriber> Layer<S> for Counter {
    fn on_event(
        &self,
        _event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}
