//! A bounded mailbox: a fast producer is slowed to the pace of a slow
//! consumer instead of filling memory.
//!
//! Run it: `cargo run -p owl-runtime --example back_pressure`

use std::time::{Duration, Instant};

use owl_runtime::prelude::*;

fn main() {
    let rt = Runtime::new(Config::default()).expect("runtime");
    let node = rt.node();
    rt.block_on(async move {
        // The consumer takes one message per millisecond; its mailbox holds 8.
        let consumer = node.spawn_opts(
            SpawnOptions::new()
                .label("slow consumer")
                .mailbox_capacity(8),
            |mut p| async move {
                loop {
                    let _: u32 = p.recv().await;
                    p.sleep(Duration::from_millis(1)).await;
                }
            },
        );
        // `send` refuses when the mailbox is full…
        let mut refused = 0;
        for i in 0..100u32 {
            if let Err(SendError::Full(_)) = consumer.send(i) {
                refused += 1;
            }
        }
        println!("send: {refused} of 100 refused at once (the mailbox holds 8)");
        // …`send_wait` waits for room: the producer goes at the consumer's pace.
        let started = Instant::now();
        for i in 0..200u32 {
            consumer.send_wait(i).await.expect("consumer alive");
        }
        let info = node.info(&consumer).expect("alive");
        println!(
            "send_wait: 200 messages in {:.0} ms; the queue never held more than {}",
            started.elapsed().as_secs_f64() * 1e3,
            info.mailbox_capacity.expect("bounded")
        );
        node.kill(&consumer);
    });
}
