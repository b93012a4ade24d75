//! A worker pool behind one server, answering with deferred replies: a
//! caller asks the pool to run a job and hears "job done" when the worker
//! that ran it reports back — meanwhile the pool goes on taking jobs from
//! other callers. A worker that crashes (job 13 does) costs its caller an
//! honest error, and the pool a replacement worker; nobody else notices.
//!
//! Run it with `cargo run -p owl-runtime --example pool`.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use owl_runtime::prelude::*;

/// A job: sum 1..=n, slowly.
struct Job(u64);

/// What a worker tells the pool when it has finished a job.
struct Finished {
    worker: Pid,
    sum: u64,
}

struct Pool {
    workers: usize,
    idle: Vec<Pid>,
    /// Jobs waiting for a worker, each with the caller to answer.
    queue: VecDeque<(Job, ReplyTo<Result<u64, String>>)>,
    /// What each busy worker runs: its caller, and the job's number.
    busy: HashMap<Pid, (ReplyTo<Result<u64, String>>, u64)>,
}

/// A worker: runs the jobs the pool sends it, one at a time.
async fn worker(mut p: Process, pool: Pid) {
    loop {
        let Job(n) = p.recv::<Job>().await;
        if n == 13 {
            panic!("13 is unlucky");
        }
        tokio::time::sleep(Duration::from_millis(n % 7)).await;
        let sum = (1..=n).sum();
        let _ = pool.send(Finished {
            worker: p.pid().clone(),
            sum,
        });
    }
}

impl Pool {
    fn start_worker(&mut self, ctx: &Ctx<'_>) {
        let pool = ctx.pid().clone();
        let pid = ctx.spawn_opts(
            SpawnOptions::new()
                .label("pool worker")
                .link_to(pool.clone()),
            move |p| worker(p, pool),
        );
        self.idle.push(pid);
    }

    /// Gives `job` to an idle worker, or queues it.
    fn dispatch(&mut self, job: Job, reply: ReplyTo<Result<u64, String>>) {
        match self.idle.pop() {
            Some(worker) => {
                let n = job.0;
                let _ = worker.send(job);
                self.busy.insert(worker, (reply, n));
            }
            None => self.queue.push_back((job, reply)),
        }
    }
}

impl Server for Pool {
    async fn init(&mut self, ctx: &mut Ctx<'_>) -> Result<(), ExitReason> {
        // Workers' crashes arrive as messages, not as the pool's death.
        ctx.trap_exit(true);
        for _ in 0..self.workers {
            self.start_worker(ctx);
        }
        Ok(())
    }

    async fn handle_info(&mut self, msg: Message, ctx: &mut Ctx<'_>) {
        let msg = match msg.downcast::<Finished>() {
            Ok(Finished { worker, sum }) => {
                // Answer the caller of the job this worker ran: later,
                // from another message than its request.
                if let Some((reply, _)) = self.busy.remove(&worker) {
                    reply.send(Ok(sum));
                }
                self.idle.push(worker);
                if let Some((job, reply)) = self.queue.pop_front() {
                    self.dispatch(job, reply);
                }
                return;
            }
            Err(msg) => msg,
        };
        if let Ok(exit) = msg.downcast::<Exit>()
            && let Some((reply, n)) = self.busy.remove(&exit.from)
        {
            reply.send(Err(format!("job {n} failed: {}", exit.reason)));
            self.start_worker(ctx);
            if let Some((job, reply)) = self.queue.pop_front() {
                self.dispatch(job, reply);
            }
        }
    }
}

impl HandleLater<Job> for Pool {
    type Reply = Result<u64, String>;

    async fn handle_later(&mut self, job: Job, reply: ReplyTo<Self::Reply>, _: &mut Ctx<'_>) {
        self.dispatch(job, reply);
    }
}

fn main() {
    let rt = Runtime::new(Config::default()).unwrap();
    let node = rt.node();
    rt.block_on(async move {
        let pool = Pool {
            workers: 4,
            idle: Vec::new(),
            queue: VecDeque::new(),
            busy: HashMap::new(),
        };
        let pool = server::start(&node, pool, SpawnOptions::new().label("pool"))
            .await
            .unwrap();
        // Twenty callers at once, four workers: most wait in the queue.
        let callers: Vec<_> = (1..=20u64)
            .map(|n| {
                let pool = pool.clone();
                tokio::spawn(async move { (n, pool.call(Job(n), Duration::from_secs(5)).await) })
            })
            .collect();
        let (mut done, mut failed) = (0, 0);
        for caller in callers {
            match caller.await.unwrap() {
                (n, Ok(Ok(sum))) => {
                    done += 1;
                    println!("job {n}: sum {sum}");
                }
                (_, Ok(Err(why))) => {
                    failed += 1;
                    println!("{why}");
                }
                (n, Err(e)) => println!("job {n}: no answer: {e}"),
            }
        }
        println!("jobs done: {done}, failed: {failed}");
    });
}
