//! The three restart strategies, and escalation when a child keeps crashing.
//!
//! Run it: `cargo run -p owl-runtime --example supervision`

use std::time::Duration;

use owl_runtime::prelude::*;

const T: Duration = Duration::from_secs(1);

/// A child that waits until it is killed.
fn child(id: &'static str) -> ChildSpec {
    ChildSpec::worker(id, |args| async move {
        Ok(args.spawn_link(|mut p| async move {
            p.recv::<()>().await;
        }))
    })
}

async fn pids(sup: &SupervisorRef) -> Vec<Pid> {
    let children = sup.which_children(T).await.expect("children");
    children.into_iter().filter_map(|c| c.pid).collect()
}

/// Kills child `b` and shows which of a, b, c got new pids.
async fn show(node: &Node, strategy: Strategy) {
    let spec = SupervisorSpec::new(strategy)
        .child(child("a"))
        .child(child("b"))
        .child(child("c"));
    let sup = Supervisor::start(node, spec).await.expect("supervisor");
    let before = pids(&sup).await;
    let gone = before[1].wait_exit();
    node.kill(&before[1]);
    gone.await;
    let mut after = pids(&sup).await;
    while after.len() < 3 || after == before {
        tokio::time::sleep(Duration::from_millis(5)).await;
        after = pids(&sup).await;
    }
    let restarted: Vec<&str> = ["a", "b", "c"]
        .into_iter()
        .zip(before.iter().zip(&after))
        .filter(|(_, (b, a))| b != a)
        .map(|(id, _)| id)
        .collect();
    println!("{strategy:?}: killing b restarted {restarted:?}");
    sup.shutdown(T).await;
}

fn main() {
    let rt = Runtime::new(Config::default()).expect("runtime");
    let node = rt.node();
    rt.block_on(async move {
        show(&node, Strategy::OneForOne).await;
        show(&node, Strategy::OneForAll).await;
        show(&node, Strategy::RestForOne).await;

        // Escalation: at most 2 restarts in 5 s; the third crash makes the
        // inner supervisor give up, and its parent restarts it whole.
        let crashing = ChildSpec::worker("flaky", |args| async move {
            Ok(args.spawn_link(|p| async move {
                p.sleep(Duration::from_millis(5)).await;
                panic!("flaky");
            }))
        });
        let inner = SupervisorSpec::new(Strategy::OneForOne)
            .intensity(2, Duration::from_secs(5))
            .child(crashing);
        let outer = SupervisorSpec::new(Strategy::OneForOne)
            .intensity(1, Duration::from_secs(5))
            .child(ChildSpec::supervisor("inner", inner));
        let outer = Supervisor::start(&node, outer).await.expect("outer");
        let ended = outer.pid().wait_exit();
        println!(
            "escalation: the outer supervisor ended with {:?}",
            ended.await
        );
    });
}
