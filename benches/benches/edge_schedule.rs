//! The edge worker's schedule: picking the due connections among 1,000,000
//! (0.1 % due) and moving one after its step. Before the schedule, every
//! tick read every connection record from storage.
//!
//! `cargo bench -p benches --bench edge_schedule`

use std::hint::black_box;

use control_plane::Schedule;
use criterion::{Criterion, criterion_group, criterion_main};
use time::{Duration, OffsetDateTime};

const CONNECTIONS: usize = 1_000_000;

fn schedule(c: &mut Criterion) {
    let now = OffsetDateTime::now_utc();
    let s = Schedule::default();
    s.replace_all((0..CONNECTIONS).map(|i| {
        // One in a thousand is due; the rest spread over the next day.
        let at = if i % 1000 == 0 {
            now - Duration::SECOND
        } else {
            now + Duration::seconds((i % 86_400) as i64 + 1)
        };
        (format!("{i:016x}"), Some(at))
    }));
    let mut group = c.benchmark_group("worker_schedule_1m");
    group.bench_function("due_1000_of_1m", |b| b.iter(|| black_box(s.due(black_box(now), 1000))));
    let mut i = 0usize;
    group.bench_function("reschedule_one", |b| {
        b.iter(|| {
            i = (i + 7919) % CONNECTIONS;
            s.set(&format!("{i:016x}"), Some(now + Duration::seconds((i % 86_400) as i64 + 1)));
        })
    });
    group.finish();
}

criterion_group!(benches, schedule);
criterion_main!(benches);
