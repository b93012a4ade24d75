//! The operator's process lists on a node with many quiet processes: the
//! busy one, the stuck one and the big one come first by their keys, a
//! search finds what it names, and `top` names the busy process — all
//! without reading every process on each refresh (the cost itself is
//! measured by `owl bench observe`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use owl_runtime::{Pid, Runtime};
use owl_sandbox::{Sandbox, SandboxConfig};
use owl_system::math::{MathConfig, MathService};
use owl_system::operator::{ListQuery, Operator, SortKey};

const LIMIT: Duration = Duration::from_secs(30);

fn operator(rt: &Runtime) -> Operator {
    let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
    let math = MathService::new(sandbox.clone(), MathConfig::default()).unwrap();
    Operator::new(rt.node(), sandbox, math)
}

fn query(sort: SortKey, filter: &str) -> ListQuery {
    ListQuery {
        sort,
        filter: filter.to_string(),
        limit: 10,
    }
}

/// Asks `list` until its first row is `pid` (the profiler needs a window).
async fn first_becomes(operator: &Operator, q: &ListQuery, pid: &Pid) {
    let start = Instant::now();
    loop {
        let list = operator.processes(q).await;
        if list.processes.first().map(|r| r.id) == Some(pid.id().0) {
            return;
        }
        assert!(
            start.elapsed() < LIMIT,
            "{pid} never came first by {:?}: {:?}",
            q.sort,
            list.processes.iter().map(|r| r.id).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn the_busy_the_stuck_and_the_big_stand_out_among_twenty_thousand_quiet_ones() {
    let rt = Runtime::new(Default::default()).unwrap();
    let node = rt.node();
    let operator = operator(&rt);
    for _ in 0..20_000 {
        node.spawn(|mut p| async move { p.recv::<()>().await });
    }
    let stop = Arc::new(AtomicBool::new(false));
    let spinning = stop.clone();
    let busy = node.spawn(move |p| async move {
        p.set_activity("spinning");
        while !spinning.load(Ordering::Relaxed) {
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(2) {}
            tokio::task::yield_now().await;
        }
    });
    let stuck = node.spawn(|mut p| async move { p.recv::<()>().await });
    for _ in 0..200 {
        stuck.send(1u32).unwrap();
    }
    let big = node.spawn(|mut p| async move {
        p.set_memory_hint(8 << 20);
        p.recv::<()>().await
    });
    rt.block_on(async {
        first_becomes(&operator, &query(SortKey::Cpu, ""), &busy).await;
        let list = operator.processes(&query(SortKey::Cpu, "")).await;
        assert!(list.processes[0].cpu_pct > 20.0, "{:?}", list.processes[0]);
        assert_eq!(list.total, node.process_count());

        first_becomes(&operator, &query(SortKey::Mailbox, ""), &stuck).await;
        first_becomes(&operator, &query(SortKey::Memory, ""), &big).await;

        // A search reads every process: by pid, by activity.
        let by_pid = operator
            .processes(&query(SortKey::Cpu, &busy.to_string()))
            .await;
        assert_eq!(
            by_pid.processes.iter().map(|r| r.id).collect::<Vec<_>>(),
            [busy.id().0]
        );
        let by_activity = operator.processes(&query(SortKey::Cpu, "SPINNING")).await;
        assert_eq!(by_activity.processes.len(), 1);
        let none = operator
            .processes(&query(SortKey::Cpu, "nothing is called this"))
            .await;
        assert!(none.processes.is_empty());

        // `top` names it too, from the same samples.
        let top = operator.top(Duration::from_millis(200), 3).await;
        assert_eq!(top[0].pid, busy, "{top:?}");
        assert!(top[0].cpu_share > 20.0, "{top:?}");
    });
    stop.store(true, Ordering::Relaxed);
}
