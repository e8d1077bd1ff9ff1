//! Group commit of routine audit records.
//!
//! A transaction that read only from the node's cache and wrote nothing but
//! routine audit records (a wrong code checked by an administrator on the
//! socket: counted nowhere, audited all the same) needs no transaction of
//! its own. Its records are handed to the node's one audit writer, which
//! writes everything handed to it meanwhile in one transaction: the
//! records of one aggregate key add their number to one row in one update,
//! those never aggregated go in one multi-row insert. Each caller returns
//! only once the transaction holding its records has committed (or with
//! its error): a record is exactly as durable as when written in the
//! caller's own transaction, the database runs one commit for many checks,
//! and the node's checks no longer take turns on an aggregate row.
//!
//! Bounded: at most [`MAX_QUEUED`] records wait (a caller that finds the
//! queue full waits for room), at most [`MAX_BATCH`] go in one transaction
//! (unless one caller's alone are more: they are never split),
//! and no caller waits longer than the statement time-out: past it, a
//! record still queued is withdrawn and the call fails as the database
//! being unavailable. When the database is lost, the batch being written
//! fails and each of its callers gets the error.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{Aggregate, AuditRecord, DbErrorKind, Result, StoreError};

/// Records written in one transaction at most.
pub(super) const MAX_BATCH: usize = 256;
/// Records waiting at most; a caller finding no room waits for it.
pub(super) const MAX_QUEUED: usize = 1024;

/// One routine record handed to the writer, with its aggregation.
#[derive(Debug, Clone)]
pub(super) struct Record {
    pub(super) record: AuditRecord,
    aggregate: Option<(String, i64, u32)>,
}

impl Record {
    pub(super) fn new(record: &AuditRecord, aggregate: Option<&Aggregate<'_>>) -> Self {
        Self {
            record: record.clone(),
            aggregate: aggregate.map(|a| (a.key.to_owned(), a.since_ms, a.free)),
        }
    }

    pub(super) fn aggregate(&self) -> Option<Aggregate<'_>> {
        self.aggregate
            .as_ref()
            .map(|(key, since_ms, free)| Aggregate {
                key,
                since_ms: *since_ms,
                free: *free,
            })
    }
}

/// How a batch ended, for each of its callers.
type Outcome = std::result::Result<(), (DbErrorKind, String)>;

fn outcome_of(r: &Result<()>) -> Outcome {
    match r {
        Ok(()) => Ok(()),
        Err(StoreError::Database { kind, message }) => Err((*kind, message.clone())),
        Err(other) => Err((DbErrorKind::Other, other.to_string())),
    }
}

fn unavailable(message: &str) -> StoreError {
    StoreError::Database {
        kind: DbErrorKind::Unavailable,
        message: message.to_owned(),
    }
}

/// One caller's wait for the batch holding its records.
#[derive(Default)]
struct Ticket {
    outcome: Mutex<Option<Outcome>>,
    done: Condvar,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<(Vec<Record>, Arc<Ticket>)>,
    /// Records in `waiting`.
    records: usize,
    closed: bool,
}

struct Inner {
    queue: Mutex<Queue>,
    /// Something was queued (or the writer is to stop).
    work: Condvar,
    /// Room was made in the queue.
    room: Condvar,
    /// The longest a caller waits.
    wait: Duration,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The node's audit writer: a thread writing what callers hand it.
pub(super) struct Writer {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    /// Starts the writer: `write` writes one batch in one transaction (all
    /// or nothing). No caller waits longer than `wait`.
    pub(super) fn spawn(
        wait: Duration,
        write: impl FnMut(&[Record]) -> Result<()> + Send + 'static,
    ) -> std::io::Result<Self> {
        let inner = Arc::new(Inner {
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            room: Condvar::new(),
            wait,
        });
        let thread = std::thread::Builder::new()
            .name("twofactor-audit".into())
            .spawn({
                let inner = inner.clone();
                move || run(&inner, write)
            })?;
        Ok(Self {
            inner,
            thread: Some(thread),
        })
    }

    /// Hands `records` to the writer and waits until the transaction
    /// holding them has committed; its error otherwise. Past the wait, a
    /// record not yet taken is withdrawn (it is never written) and the
    /// call fails as the database being unavailable.
    pub(super) fn submit(&self, records: Vec<Record>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + self.inner.wait;
        let n = records.len();
        let ticket = Arc::new(Ticket::default());
        {
            let mut q = lock(&self.inner.queue);
            loop {
                if q.closed {
                    return Err(unavailable("the audit writer has stopped"));
                }
                if q.records == 0 || q.records + n <= MAX_QUEUED {
                    break;
                }
                let now = Instant::now();
                if now >= deadline {
                    return Err(unavailable("the audit writer is overloaded"));
                }
                q = self
                    .inner
                    .room
                    .wait_timeout(q, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            q.records += n;
            q.waiting.push_back((records, ticket.clone()));
        }
        self.inner.work.notify_one();
        {
            let mut out = lock(&ticket.outcome);
            loop {
                if let Some(o) = out.take() {
                    return finish(o);
                }
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                out = ticket
                    .done
                    .wait_timeout(out, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
        // Too late: withdraw the records if the writer has not taken them.
        let mut q = lock(&self.inner.queue);
        if let Some(i) = q.waiting.iter().position(|(_, t)| Arc::ptr_eq(t, &ticket)) {
            if let Some((gone, _)) = q.waiting.remove(i) {
                q.records -= gone.len();
            }
            drop(q);
            self.inner.room.notify_all();
            return Err(unavailable("the audit record could not be written in time"));
        }
        drop(q);
        // Taken: the batch may just have ended.
        match lock(&ticket.outcome).take() {
            Some(o) => finish(o),
            None => Err(unavailable("the audit record could not be written in time")),
        }
    }
}

fn finish(o: Outcome) -> Result<()> {
    o.map_err(|(kind, message)| StoreError::Database { kind, message })
}

impl Drop for Writer {
    /// Writes what is still queued, then stops the thread.
    fn drop(&mut self) {
        lock(&self.inner.queue).closed = true;
        self.inner.work.notify_all();
        self.inner.room.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(inner: &Inner, mut write: impl FnMut(&[Record]) -> Result<()>) {
    loop {
        let taken: Vec<(Vec<Record>, Arc<Ticket>)> = {
            let mut q = lock(&inner.queue);
            while q.waiting.is_empty() {
                if q.closed {
                    return;
                }
                q = inner.work.wait(q).unwrap_or_else(PoisonError::into_inner);
            }
            let mut taken = Vec::new();
            let mut count = 0;
            while let Some((records, _)) = q.waiting.front() {
                if count > 0 && count + records.len() > MAX_BATCH {
                    break;
                }
                count += records.len();
                taken.extend(q.waiting.pop_front());
            }
            q.records -= count;
            taken
        };
        inner.room.notify_all();
        let mut records = Vec::new();
        let mut tickets = Vec::with_capacity(taken.len());
        for (batch, ticket) in taken {
            records.extend(batch);
            tickets.push(ticket);
        }
        let outcome = outcome_of(&write(&records));
        for ticket in tickets {
            *lock(&ticket.outcome) = Some(outcome.clone());
            ticket.done.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;
    use std::sync::mpsc;

    fn rec(at_ms: i64) -> Record {
        Record::new(
            &AuditRecord {
                at_ms,
                event: "otp.check".into(),
                outcome: "wrong".into(),
                user: Some("root".into()),
                origin: "unix:uid=0".into(),
                service: None,
                detail: None,
            },
            Some(&Aggregate {
                key: "k",
                since_ms: 0,
                free: 3,
            }),
        )
    }

    /// A writer whose every batch says its size, then waits for a go; one
    /// caller's record is being written in the first batch.
    struct Gated {
        writer: Arc<Writer>,
        started: mpsc::Receiver<usize>,
        go: mpsc::Sender<()>,
        first: std::thread::JoinHandle<Result<()>>,
    }

    fn gated() -> Gated {
        let (started_tx, started) = mpsc::channel::<usize>();
        let (go_tx, go) = mpsc::channel::<()>();
        let go = Mutex::new(go);
        let writer = Arc::new(
            Writer::spawn(Duration::from_secs(30), move |records| {
                started_tx.send(records.len()).expect("test alive");
                lock(&go).recv().expect("test alive");
                Ok(())
            })
            .expect("writer"),
        );
        let first = {
            let w = writer.clone();
            std::thread::spawn(move || w.submit(vec![rec(0)]))
        };
        assert_eq!(started.recv().expect("first batch"), 1);
        Gated {
            writer,
            started,
            go: go_tx,
            first,
        }
    }

    /// Callers arriving while a batch is written are written together in
    /// the next one, each returning once it committed.
    #[test]
    fn records_queued_during_a_batch_go_in_the_next_one_together() {
        let Gated {
            writer,
            started,
            go: go_tx,
            first,
        } = gated();
        // The first batch is being written: eight more callers queue.
        let callers: Vec<_> = (1..=8)
            .map(|i| {
                let w = writer.clone();
                std::thread::spawn(move || w.submit(vec![rec(i)]))
            })
            .collect();
        while lock(&writer.inner.queue).records < 8 {
            std::thread::yield_now();
        }
        go_tx.send(()).expect("writer alive");
        first.join().expect("first").expect("written");
        assert_eq!(started.recv().expect("second batch"), 8);
        go_tx.send(()).expect("writer alive");
        for c in callers {
            c.join().expect("caller").expect("written");
        }
    }

    /// A failed batch fails each of its callers with its error; none is
    /// told it was written.
    #[test]
    fn a_failed_batch_fails_every_caller_in_it() {
        const CALLERS: usize = 6;
        let barrier = Arc::new(Barrier::new(CALLERS));
        let writer = Arc::new(
            Writer::spawn(Duration::from_secs(30), |_| {
                Err(unavailable("connection closed"))
            })
            .expect("writer"),
        );
        let callers: Vec<_> = (0..CALLERS)
            .map(|i| {
                let (w, b) = (writer.clone(), barrier.clone());
                std::thread::spawn(move || {
                    b.wait();
                    w.submit(vec![rec(i64::try_from(i).expect("small"))])
                })
            })
            .collect();
        for c in callers {
            let e = c.join().expect("caller").expect_err("not written");
            assert_eq!(e.db_kind(), Some(DbErrorKind::Unavailable), "{e}");
        }
    }

    /// A writer stuck on the database never holds a caller beyond the
    /// wait: one in the stuck batch and one still queued both fail as
    /// unavailable in time, and the queued one is withdrawn (never
    /// written afterwards).
    #[test]
    fn callers_fail_in_time_when_the_writer_is_stuck_and_queued_ones_are_withdrawn() {
        let (started_tx, started) = mpsc::channel::<Vec<i64>>();
        let (go_tx, go) = mpsc::channel::<()>();
        let go = Mutex::new(go);
        let wait = Duration::from_millis(300);
        let writer = Arc::new(
            Writer::spawn(wait, move |records| {
                started_tx
                    .send(records.iter().map(|r| r.record.at_ms).collect())
                    .expect("test alive");
                lock(&go).recv().expect("test alive");
                Err(unavailable("statement timeout"))
            })
            .expect("writer"),
        );
        let t0 = Instant::now();
        let stuck = {
            let w = writer.clone();
            std::thread::spawn(move || w.submit(vec![rec(1)]))
        };
        assert_eq!(started.recv().expect("batch"), vec![1]);
        let queued = {
            let w = writer.clone();
            std::thread::spawn(move || w.submit(vec![rec(2)]))
        };
        for c in [stuck, queued] {
            let e = c.join().expect("caller").expect_err("not written");
            assert_eq!(e.db_kind(), Some(DbErrorKind::Unavailable));
        }
        assert!(t0.elapsed() < wait * 4, "{:?}", t0.elapsed());
        assert_eq!(lock(&writer.inner.queue).records, 0, "withdrawn");
        // The writer comes back; nothing of the withdrawn caller is written.
        go_tx.send(()).expect("writer alive");
        let w = Arc::try_unwrap(writer).expect("only handle");
        drop(w);
        assert!(
            started.try_recv().is_err(),
            "the withdrawn record was written"
        );
    }

    /// The queue is bounded: a caller finding it full waits for room
    /// rather than growing it, and is written once there is room.
    #[test]
    fn a_full_queue_makes_callers_wait_for_room() {
        let Gated {
            writer,
            started,
            go: go_tx,
            first,
        } = gated();
        // Sixteen callers of 64 records each fill it.
        let fill: Vec<_> = (0..16)
            .map(|i| {
                let w = writer.clone();
                std::thread::spawn(move || w.submit((i * 64..(i + 1) * 64).map(rec).collect()))
            })
            .collect();
        while lock(&writer.inner.queue).records < MAX_QUEUED {
            std::thread::yield_now();
        }
        let late = {
            let w = writer.clone();
            std::thread::spawn(move || w.submit(vec![rec(-1)]))
        };
        // The late caller cannot enter while the queue is full.
        for _ in 0..100 {
            std::thread::yield_now();
            assert_eq!(lock(&writer.inner.queue).records, MAX_QUEUED);
        }
        go_tx.send(()).expect("writer alive");
        first.join().expect("first").expect("written");
        // The full queue goes in batches of at most MAX_BATCH.
        let mut written = 0;
        while written < MAX_QUEUED + 1 {
            let n = started.recv().expect("batch");
            assert!(n <= MAX_BATCH, "{n}");
            written += n;
            go_tx.send(()).expect("writer alive");
        }
        for f in fill {
            f.join().expect("fill").expect("written");
        }
        late.join().expect("late").expect("written");
    }

    /// Dropping the writer writes what is queued before the thread stops.
    #[test]
    fn nothing_queued_is_lost_when_the_writer_stops() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let (entered_tx, entered) = mpsc::channel::<()>();
        let (go_tx, go) = mpsc::channel::<()>();
        let go = Mutex::new(go);
        let sink = written.clone();
        let writer = Arc::new(
            Writer::spawn(Duration::from_secs(30), move |records| {
                entered_tx.send(()).expect("test alive");
                lock(&go).recv().expect("test alive");
                lock(&sink).extend(records.iter().map(|r| r.record.at_ms));
                Ok(())
            })
            .expect("writer"),
        );
        let submit = |i: i64| {
            let w = writer.clone();
            std::thread::spawn(move || w.submit(vec![rec(i)]))
        };
        let mut callers = vec![submit(0)];
        entered.recv().expect("a batch");
        // The first batch is being written; three more callers wait.
        callers.extend((1..4).map(submit));
        while lock(&writer.inner.queue).records < 3 {
            std::thread::yield_now();
        }
        // Close while records wait, then let the writer go on.
        lock(&writer.inner.queue).closed = true;
        writer.inner.work.notify_all();
        for _ in 0..4 {
            go_tx.send(()).ok();
        }
        for c in callers {
            c.join().expect("caller").expect("written before stopping");
        }
        drop(writer);
        let mut got = lock(&written).clone();
        got.sort_unstable();
        assert_eq!(got, vec![0, 1, 2, 3]);
    }
}
