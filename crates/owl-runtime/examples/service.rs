//! A small service on owl-runtime: a named counter server under a
//! one_for_one supervisor; 100 workers under a dynamic supervisor, one of
//! which panics on job 13; a client that monitors a worker; a reporter that
//! prints the three busiest processes; an ordered shutdown.
//!
//! Run it: `cargo run -p owl-runtime --example service`

use std::time::Duration;

use owl_runtime::prelude::*;

const T: Duration = Duration::from_secs(1);

/// The counter: how many jobs succeeded.
#[derive(Default)]
struct Counter(u64);
impl Server for Counter {}

struct Done;
impl Handle<Done> for Counter {
    type Reply = ();
    async fn handle(&mut self, _: Done, _: &mut Ctx<'_>) {
        self.0 += 1;
    }
}

struct Total;
impl Handle<Total> for Counter {
    type Reply = u64;
    async fn handle(&mut self, _: Total, _: &mut Ctx<'_>) -> u64 {
        self.0
    }
}

/// A worker: one job, reported to the counter; job 13 panics.
async fn work(p: Process, job: u32) {
    p.sleep(Duration::from_millis(10)).await;
    assert_ne!(job, 13, "job 13 is unlucky");
    if let Some(counter) = ServerRef::<Counter>::whereis(p.node(), "counter") {
        let _ = counter.cast(Done);
    }
}

fn main() {
    // Crash reports and supervisor reports go through `tracing`.
    tracing_subscriber::fmt().with_target(false).init();
    let rt = Runtime::new(Config::default()).expect("runtime");
    let node = rt.node();
    rt.block_on(async move {
        let counter = ChildSpec::worker("counter", |args| async move {
            server::start_link_named(
                &args,
                Some("counter"),
                Counter::default(),
                SpawnOptions::new(),
            )
            .await
        });
        let jobs = ChildSpec::supervisor("jobs", SupervisorSpec::dynamic().name("jobs"));
        let root = SupervisorSpec::new(Strategy::OneForOne)
            .child(counter)
            .child(jobs);
        let root = Supervisor::start(&node, root).await.expect("tree");

        // The reporter: the three busiest processes, every 50 ms.
        let reporter = node.spawn(|p| async move {
            loop {
                for e in p.node().top(Duration::from_millis(50), 3).await {
                    println!("top: {} {:<20} {:.1}% cpu", e.pid, e.label, e.cpu_share);
                }
            }
        });

        // 100 workers; temporary, so job 13's crash is reported, not retried.
        let jobs = SupervisorRef::from_pid(node.whereis("jobs").expect("jobs"));
        let mut watched = None;
        for job in 0..100 {
            let spec = ChildSpec::dynamic_worker(move |args| async move {
                Ok(args.spawn_link(move |p| work(p, job)))
            })
            .restart(Restart::Temporary);
            let pid = jobs.start_child(spec, T).await.expect("worker");
            if job == 13 {
                watched = Some(pid);
            }
        }

        // A client monitors worker 13 and hears why it ended.
        let client = node.spawn_task(move |mut p| async move {
            let mref = p.monitor(&watched.expect("worker 13"));
            let down: Down = p.recv_match(move |d: &Down| d.monitor == mref).await;
            down.reason
        });
        println!("worker 13 ended: {}", client.join().await.expect("client"));

        let counter = ServerRef::<Counter>::whereis(&node, "counter").expect("counter");
        while counter.call(Total, T).await.expect("total") < 99 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        println!(
            "jobs done: {}",
            counter.call(Total, T).await.expect("total")
        );

        // Ordered shutdown: the jobs, then the counter (reverse start order).
        node.kill(&reporter);
        root.shutdown(T).await;
    });
}
