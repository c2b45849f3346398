//! Benchmark aid: attaches memmon's programs (`memmon`) or the empty baseline (`empty`), prints
//! `attached`, and detaches when stdin closes. Used by scripts/bench-overhead.sh.
use std::io::Read as _;

use anyhow::{Context as _, bail};
use memmon_helper::{Collector, tracker};

fn main() -> anyhow::Result<()> {
    let which = std::env::args().nth(1).unwrap_or_default();
    let _keep: Box<dyn std::any::Any> = match which.as_str() {
        "memmon" => {
            let c = Collector::with_ebpf();
            if c.mode() != memmon_common::snapshot::Mode::Full {
                bail!("memmon programs not attached: {:?}", c.mode_reason());
            }
            Box::new(c)
        }
        "empty" => Box::new(tracker::attach_empty_baseline().context("empty baseline")?),
        other => bail!("usage: attach memmon|empty (got {other:?})"),
    };
    println!("attached");
    let mut sink = Vec::new();
    std::io::stdin().read_to_end(&mut sink)?;
    Ok(())
}
