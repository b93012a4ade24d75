//! Supervisors at scale: start and stop N static children (one spec each,
//! started in order) and N dynamic children (`start_child` one by one), the
//! way the load page puts up to a million workers under supervisors.

use std::time::{Duration, Instant};

use owl_runtime::Node;
use owl_runtime::supervisor::{ChildSpec, Restart, Strategy, Supervisor, SupervisorSpec};

use super::Report;

const CALL: Duration = Duration::from_secs(60);

fn idle_child(id: String) -> ChildSpec {
    ChildSpec::worker(id, |args| async move {
        Ok(args.spawn_link(|mut p| async move {
            loop {
                p.recv_any().await;
            }
        }))
    })
}

pub(crate) async fn run(node: &Node, children: usize) -> Result<Report, String> {
    // Static: one spec per child, started in order when the supervisor starts.
    let mut spec = SupervisorSpec::new(Strategy::OneForOne);
    for i in 0..children {
        spec = spec.child(idle_child(format!("c{i}")));
    }
    let t = Instant::now();
    let sup = Supervisor::start(node, spec)
        .await
        .map_err(|e| format!("static supervisor: {e}"))?;
    let static_start = t.elapsed();
    let t = Instant::now();
    sup.shutdown(CALL)
        .await
        .ok_or("static shutdown timed out")?;
    let static_stop = t.elapsed();

    // Dynamic: children added one by one through the supervisor's mailbox,
    // from a process (as the load manager does).
    let sup = Supervisor::start(node, SupervisorSpec::dynamic())
        .await
        .map_err(|e| format!("dynamic supervisor: {e}"))?;
    let child = idle_child("job".into()).restart(Restart::Temporary);
    let starter = sup.clone();
    let rss_before = super::rss_bytes();
    let dynamic_start = node
        .spawn_task(move |_| async move {
            let t = Instant::now();
            for _ in 0..children {
                starter
                    .start_child(child.clone(), CALL)
                    .await
                    .map_err(|e| format!("start_child: {e}"))?;
            }
            Ok::<_, String>(t.elapsed())
        })
        .join()
        .await
        .map_err(|e| format!("starter crashed: {e}"))??;
    let dynamic_bytes =
        super::rss_bytes().saturating_sub(rss_before) as f64 / children.max(1) as f64;
    let t = Instant::now();
    sup.shutdown(CALL)
        .await
        .ok_or("dynamic shutdown timed out")?;
    let dynamic_stop = t.elapsed();

    Ok(Report::new("supervisor", "owl")
        .with("children", children as f64)
        .with("static_start_s", static_start.as_secs_f64())
        .with("static_stop_s", static_stop.as_secs_f64())
        .with("dynamic_start_s", dynamic_start.as_secs_f64())
        .with("dynamic_stop_s", dynamic_stop.as_secs_f64())
        .with("dynamic_bytes_per_child", dynamic_bytes))
}
