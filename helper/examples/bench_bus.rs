//! D-Bus load benchmark: N clients (each its own bus connection) call
//! GetSnapshot("rss", true, 100) at R Hz for S seconds; prints call latency p50/p99/max.
//! Usage: bench_bus [CLIENTS] [HZ] [SECONDS]   (run by scripts/bench-bus.sh inside the harness)
use std::time::{Duration, Instant};

use anyhow::Context as _;
use memmon_helper::dbus::Helper1Proxy;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let arg = |i: usize, default: u64| {
        std::env::args()
            .nth(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let (clients, hz, secs) = (arg(1, 20), arg(2, 10), arg(3, 30));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        tasks.push(tokio::spawn(async move {
            let conn = zbus::Connection::system().await.context("system bus")?;
            let proxy = Helper1Proxy::new(&conn).await.context("proxy")?;
            let mut latencies = Vec::new();
            let mut ticker = tokio::time::interval(Duration::from_millis(1000 / hz));
            let end = Instant::now() + Duration::from_secs(secs);
            while Instant::now() < end {
                ticker.tick().await;
                let start = Instant::now();
                let json = proxy
                    .get_snapshot("rss", true, 100)
                    .await
                    .context("GetSnapshot")?;
                latencies.push(start.elapsed());
                anyhow::ensure!(json.len() > 100, "short reply");
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.context("client task")??);
    }
    all.sort();
    let pct =
        |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)].as_secs_f64() * 1e3;
    println!(
        "clients={clients} hz={hz} seconds={secs} calls={} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        all.len(),
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    Ok(())
}
