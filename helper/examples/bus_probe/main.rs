//! Adversarial clients of the helper, for the bus harness (tests/bus/run.sh runs it as the test
//! users, inside its private bus). Each scenario makes its calls through the real bus, checks
//! its own pass condition with the project's types and prints `ok <what>` or `FAIL <what>`
//! lines, which the harness counts.
//!
//! Usage: bus_probe SCENARIO [ARGS]
//!   flood CONNS CALLS          CONNS connections × CALLS concurrent GetInfo; none may be
//!                              answered NotAuthorized-for-overload (prints the tally)
//!   fresh N MAX_MS             N calls, each on a fresh connection, each answered within MAX_MS
//!   fire-and-forget N PID      N clients send SetInterval(250) and SetHighResolution(PID) and
//!                              exit without waiting
//!   bad-inputs                 every edge of every argument gets a defined error, short
//!   detail-interleaved PID N   GetMemoryDetail(PID) between N others: PID walked once per 5 s
//!   detail-burst PID N         N concurrent GetMemoryDetail calls
//!   stalled-reader             asks for 1,000-row snapshots and never reads the replies
//!   info-latency N P99_MS      N GetInfo calls; p99 under P99_MS
//!
//! and the payload checks, through the typed client and the project's serde types:
//!   exact-counts WORKLOAD      a child doing 40 mmaps, 15 munmaps and 9 failed mmaps: exact
//!                              eBPF deltas in two Full-mode snapshots
//!   history PID                history from before this client asked; none for a stale start
//!   system-history             samples with pressure and rates; only newer ones when asked
//!   detail PID                 PSS <= RSS, USS <= PSS, one walk per 5 s, stale start refused
//!   high-res PID               the process's rows carry high-resolution data while watched
//!   sort-keys                  every column of the table ranks all processes, in order
//!   apps ID DIR PID            the app ID (cgroup DIR, process PID) over GetApps and
//!                              GetAppHistory; bad arguments refused
//!   callsites WORKLOAD         call-site sessions on a leaking child (see callsites.rs)
//!   callsites-leave WORKLOAD   starts a session and leaves the bus without stopping it
mod apps;
mod callsites;

use std::{
    collections::BTreeMap,
    io::{BufRead as _, Write as _},
    time::Duration,
};

use anyhow::Context as _;
use memmon_common::{
    diagnostics::MemoryDetail,
    snapshot::{Mode, SortKey, unix_ms_now},
};
use memmon_helper::{
    client::{ClientError, HelperClient},
    dbus::{BUS_NAME, INTERFACE, OBJECT_PATH},
};
use tokio::time::Instant;
use zbus::{Connection, Proxy, proxy::MethodFlags};

fn report(ok: bool, what: &str) -> bool {
    println!("{} {what}", if ok { "ok  " } else { "FAIL" });
    ok
}

async fn proxy() -> anyhow::Result<Proxy<'static>> {
    let conn = Connection::system().await.context("system bus")?;
    Ok(Proxy::new(&conn, BUS_NAME, OBJECT_PATH, INTERFACE).await?)
}

/// The error's short name (`NotAuthorized`, ...) or "ok".
fn outcome<T>(r: &zbus::Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(zbus::Error::MethodError(name, _, _)) => {
            name.as_str().rsplit('.').next().unwrap_or("?").to_owned()
        }
        // The bus's and the object server's own errors (wrong signature, unknown method).
        Err(e) => {
            let text = e.to_string();
            match text.strip_prefix("org.freedesktop.DBus.Error.") {
                Some(rest) => rest.split(':').next().unwrap_or(rest).to_owned(),
                None => format!("error: {text}"),
            }
        }
    }
}

fn start_time(pid: u32) -> anyhow::Result<u64> {
    Ok(procfs::process::Process::new(pid as i32)?.stat()?.starttime)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> anyhow::Result<u64> {
        args.get(i)
            .with_context(|| format!("argument {i} missing"))?
            .parse()
            .context("a number")
    };
    let scenario = args.first().map(String::as_str).unwrap_or("");
    let ok = match scenario {
        "flood" => flood(arg(1)? as usize, arg(2)? as usize).await?,
        "fresh" => fresh(arg(1)? as usize, arg(2)?).await?,
        "fire-and-forget" => fire_and_forget(arg(1)? as usize, arg(2)? as u32).await?,
        "bad-inputs" => bad_inputs().await?,
        "detail-interleaved" => detail_interleaved(arg(1)? as u32, arg(2)? as usize).await?,
        "detail-burst" => detail_burst(arg(1)? as u32, arg(2)? as usize).await?,
        "stalled-reader" => stalled_reader().await?,
        "info-latency" => info_latency(arg(1)? as usize, arg(2)?).await?,
        "exact-counts" => exact_counts(args.get(1).context("the workload binary")?).await?,
        "history" => history(arg(1)? as u32).await?,
        "system-history" => system_history().await?,
        "detail" => detail(arg(1)? as u32).await?,
        "high-res" => high_res(arg(1)? as u32).await?,
        "sort-keys" => sort_keys().await?,
        "apps" => {
            let text = |i: usize| args.get(i).map(String::as_str).context("argument missing");
            apps::apps(text(1)?, text(2)?, arg(3)? as u32).await?
        }
        "callsites" => callsites::callsites(args.get(1).context("the workload binary")?).await?,
        "callsites-leave" => callsites::leave(args.get(1).context("the workload binary")?).await?,
        other => anyhow::bail!("unknown scenario {other:?}"),
    };
    std::process::exit(if ok { 0 } else { 1 });
}

async fn flood(conns: usize, calls: usize) -> anyhow::Result<bool> {
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let p = proxy().await?;
        for _ in 0..calls {
            let p = p.clone();
            tasks.push(tokio::spawn(async move {
                outcome(
                    &p.call::<_, _, BTreeMap<String, zbus::OwnedVariant>>("GetInfo", &())
                        .await,
                )
            }));
        }
    }
    let mut tally = BTreeMap::<String, usize>::new();
    for t in tasks {
        *tally.entry(t.await?).or_default() += 1;
    }
    println!("flood tally: {tally:?}");
    // A denied user's flood is refused (by polkit or, beyond the caps, with Unavailable).
    Ok(report(
        tally.keys().all(|k| {
            ["NotAuthorized", "AuthenticationRequired", "Unavailable"].contains(&k.as_str())
        }),
        &format!("{conns}×{calls} concurrent calls each got a defined answer ({tally:?})"),
    ))
}

async fn fresh(n: usize, max_ms: u64) -> anyhow::Result<bool> {
    let mut worst = Duration::ZERO;
    let mut bad = Vec::new();
    for _ in 0..n {
        let started = Instant::now();
        let p = proxy().await?;
        let r = p
            .call::<_, _, BTreeMap<String, zbus::OwnedVariant>>("GetInfo", &())
            .await;
        worst = worst.max(started.elapsed());
        if r.is_err() {
            bad.push(outcome(&r));
        }
    }
    Ok(report(
        bad.is_empty() && worst <= Duration::from_millis(max_ms),
        &format!(
            "{n} fresh granted calls all answered, slowest {} ms (limit {max_ms}), errors {bad:?}",
            worst.as_millis()
        ),
    ))
}

async fn fire_and_forget(n: usize, pid: u32) -> anyhow::Result<bool> {
    let start = start_time(pid)?;
    for _ in 0..n {
        let p = proxy().await?;
        let flags = MethodFlags::NO_REPLY_EXPECTED;
        p.call_with_flags::<_, _, ()>("SetInterval", flags, &(250u32,))
            .await?;
        p.call_with_flags::<_, _, ()>("SetHighResolution", flags, &(pid, start, true))
            .await?;
        // The connection drops here: the client is gone before the helper answers.
    }
    Ok(report(
        true,
        &format!("{n} clients sent their calls and left"),
    ))
}

/// The helper's resident memory (its /proc status is readable by anyone).
async fn helper_rss_kb(p: &Proxy<'_>) -> anyhow::Result<u64> {
    let bus = zbus::fdo::DBusProxy::new(p.connection()).await?;
    let pid = bus
        .get_connection_unix_process_id(zbus::names::BusName::try_from(BUS_NAME)?)
        .await?;
    let status = procfs::process::Process::new(pid as i32)?.status()?;
    status.vmrss.context("no VmRSS")
}

async fn bad_inputs() -> anyhow::Result<bool> {
    let p = proxy().await?;
    let mut all = true;
    let _ = p
        .call::<_, _, BTreeMap<String, zbus::OwnedVariant>>("GetInfo", &())
        .await;
    let baseline = helper_rss_kb(&p).await?;
    // A call carrying 16 file descriptors: the bus policy (max_fds="0") refuses it.
    let files: Vec<std::fs::File> = (0..16)
        .map(|_| std::fs::File::open("/dev/null"))
        .collect::<Result<_, _>>()?;
    let fds: Vec<zbus::Fd<'_>> = files.iter().map(zbus::Fd::from).collect();
    let r = p.call::<_, _, String>("GetSnapshot", &(fds,)).await;
    all &= report(
        outcome(&r) == "AccessDenied",
        &format!("a call carrying 16 file descriptors: {}", outcome(&r)),
    );
    let big = |n: usize| "x".repeat(n);
    for (what, key) in [("1 MiB", big(1 << 20)), ("30 MiB", big(30 << 20))] {
        let started = Instant::now();
        let r = p
            .call::<_, _, String>("GetSnapshot", &(key.as_str(), true, 10u32))
            .await;
        let short = match &r {
            Err(zbus::Error::MethodError(_, Some(m), _)) => m.len() < 1024,
            _ => false,
        };
        all &= report(
            outcome(&r) == "InvalidArgument" && short,
            &format!(
                "a {what} sort key: {} with a short message, in {} ms",
                outcome(&r),
                started.elapsed().as_millis()
            ),
        );
    }
    let cases: Vec<(&str, zbus::Result<String>)> = vec![
        ("limit 0", p.call("GetSnapshot", &("rss", true, 0u32)).await),
        (
            "limit u32::MAX",
            p.call("GetSnapshot", &("rss", true, u32::MAX)).await,
        ),
        (
            "history of PID 0",
            p.call("GetHistory", &(0u32, 0u64)).await,
        ),
        (
            "history of PID u32::MAX, start u64::MAX",
            p.call("GetHistory", &(u32::MAX, u64::MAX)).await,
        ),
        (
            "detail of PID 0",
            p.call("GetMemoryDetail", &(0u32, 0u64)).await,
        ),
        (
            "detail of PID u32::MAX",
            p.call("GetMemoryDetail", &(u32::MAX, u64::MAX)).await,
        ),
    ];
    for (what, r) in cases {
        all &= report(
            outcome(&r) == "InvalidArgument",
            &format!("{what}: {}", outcome(&r)),
        );
    }
    for (what, ms) in [
        ("interval 0", 0u32),
        ("interval 1", 1),
        ("interval u32::MAX", u32::MAX),
    ] {
        let r = p.call::<_, _, ()>("SetInterval", &(ms,)).await;
        all &= report(
            outcome(&r) == "InvalidArgument",
            &format!("{what}: {}", outcome(&r)),
        );
    }
    let r = p
        .call::<_, _, ()>("SetHighResolution", &(0u32, 0u64, true))
        .await;
    all &= report(
        ["InvalidArgument", "Unavailable"].contains(&outcome(&r).as_str()),
        &format!("high resolution of PID 0: {}", outcome(&r)),
    );
    let r = p
        .call::<_, _, String>("GetSystemHistory", &(u64::MAX,))
        .await;
    all &= report(
        r.as_ref().is_ok_and(|j| j == "[]"),
        &format!("system history since u64::MAX is empty: {}", outcome(&r)),
    );
    // Wrong signatures: the object server refuses them.
    let r = p.call::<_, _, String>("GetSnapshot", &(1u32, "rss")).await;
    all &= report(
        outcome(&r) == "InvalidArgs",
        &format!("a wrong signature: {}", outcome(&r)),
    );
    let r = p.call::<_, _, String>("NoSuchMethod", &()).await;
    all &= report(
        outcome(&r) == "UnknownMethod",
        &format!("an unknown method: {}", outcome(&r)),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = helper_rss_kb(&p).await?;
    all &= report(
        after <= baseline + 8 * 1024,
        &format!(
            "the helper's RSS is back to its baseline: {baseline} kB before, {after} kB after"
        ),
    );
    Ok(all)
}

async fn detail_interleaved(pid: u32, others: usize) -> anyhow::Result<bool> {
    let p = proxy().await?;
    let start = start_time(pid)?;
    let pids: Vec<(u32, u64)> = procfs::process::all_processes()?
        .filter_map(|p| p.ok())
        .filter_map(|p| Some((p.pid as u32, p.stat().ok()?.starttime)))
        .filter(|(p, _)| *p != pid)
        .take(others)
        .collect();
    let mut readings = Vec::new();
    let began = Instant::now();
    for (other, other_start) in &pids {
        let _ = p
            .call::<_, _, String>("GetMemoryDetail", &(*other, *other_start))
            .await;
        let json: String = p.call("GetMemoryDetail", &(pid, start)).await?;
        let d: MemoryDetail = serde_json::from_str(&json)?;
        readings.push(d.measured_unix_ms);
        // Under the per-connection rate limit (50 calls a second).
        tokio::time::sleep(Duration::from_millis(45)).await;
    }
    readings.dedup();
    let secs = began.elapsed().as_secs_f64();
    let allowed = (secs / 5.0).ceil() as usize + 1;
    Ok(report(
        readings.len() <= allowed,
        &format!(
            "detail of one process between {} others over {secs:.1} s: walked {} times (at most {allowed})",
            pids.len(),
            readings.len()
        ),
    ))
}

async fn detail_burst(pid: u32, n: usize) -> anyhow::Result<bool> {
    let start = start_time(pid)?;
    let mut tasks = Vec::new();
    let mut p = proxy().await?;
    for i in 0..n {
        // Twenty calls per connection, all at once.
        if i % 20 == 0 {
            p = proxy().await?;
        }
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            outcome(
                &p.call::<_, _, String>("GetMemoryDetail", &(pid, start))
                    .await,
            )
        }));
    }
    let mut tally = BTreeMap::<String, usize>::new();
    for t in tasks {
        *tally.entry(t.await?).or_default() += 1;
    }
    Ok(report(
        tally.keys().all(|k| k == "ok" || k == "Unavailable"),
        &format!("{n} concurrent detail calls: {tally:?}"),
    ))
}

async fn stalled_reader() -> anyhow::Result<bool> {
    // Asks for many 1,000-row snapshots; the harness then stops this process (SIGSTOP), so
    // the replies are never read and pile up in the bus.
    let p = proxy().await?;
    for _ in 0..100 {
        let p = p.clone();
        tokio::spawn(async move {
            let _ = p
                .call::<_, _, String>("GetSnapshot", &("rss", true, 1000u32))
                .await;
        });
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    println!("sent");
    tokio::time::sleep(Duration::from_secs(120)).await;
    Ok(true)
}

async fn info_latency(n: usize, p99_ms: u64) -> anyhow::Result<bool> {
    let p = proxy().await?;
    let mut lat = Vec::new();
    for _ in 0..n {
        let started = Instant::now();
        p.call::<_, _, BTreeMap<String, zbus::OwnedVariant>>("GetInfo", &())
            .await?;
        lat.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    lat.sort();
    let p99 = lat[(lat.len() * 99 / 100).min(lat.len() - 1)];
    Ok(report(
        p99 <= Duration::from_millis(p99_ms),
        &format!(
            "GetInfo p99 {} ms over {n} calls (limit {p99_ms} ms)",
            p99.as_millis()
        ),
    ))
}

async fn exact_counts(workload: &str) -> anyhow::Result<bool> {
    let client = HelperClient::connect().await?;
    let mut child = std::process::Command::new(workload)
        .args([
            "exact",
            "--mmaps",
            "40",
            "--size",
            "10000",
            "--munmaps",
            "15",
        ])
        .args(["--failed-mmaps", "9"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting the workload")?;
    let pid = child.id();
    let mut stdin = child.stdin.take().context("stdin")?;
    let mut lines = std::io::BufReader::new(child.stdout.take().context("stdout")?).lines();
    let mut line = || lines.next().transpose().ok().flatten().unwrap_or_default();
    anyhow::ensure!(line() == "ready", "the workload did not get ready");
    let counts = |s: &memmon_common::snapshot::Snapshot| {
        s.processes
            .iter()
            .find(|r| r.pid == pid)
            .and_then(|r| r.alloc)
            .map(|a| (a.mmap_count, a.munmap_count, a.total_allocated))
    };
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let before = client.snapshot(SortKey::Pid, true, 1000).await?;
    writeln!(stdin, "go")?;
    let _done = line();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let after = client.snapshot(SortKey::Pid, true, 1000).await?;
    drop(stdin);
    let _ = child.wait();
    let mut all = report(
        after.mode == Mode::Full,
        "a granted user gets a Full-mode snapshot",
    );
    let delta = match (counts(&before), counts(&after)) {
        (Some(b), Some(a)) => Some((a.0 - b.0, a.1 - b.1, a.2 - b.2)),
        _ => None,
    };
    all &= report(
        delta == Some((40, 15, 40 * 12_288)),
        &format!(
            "its eBPF columns are exact for a driven child: (mmaps, munmaps, bytes) = {delta:?}, \
             want (40, 15, 491520)"
        ),
    );
    Ok(all)
}

async fn history(pid: u32) -> anyhow::Result<bool> {
    let client = HelperClient::connect().await?;
    let start = start_time(pid)?;
    let asked = unix_ms_now();
    let series = client.history(pid, start).await?;
    let first = series.samples.first().map(|s| s.unix_ms);
    let mut all = report(
        series.pid == pid && first.is_some_and(|t| t + 500 < asked),
        &format!(
            "history of {pid} starts before this client asked (first sample {first:?}, asked {asked})"
        ),
    );
    let stale = client.history(pid, start + 1).await;
    all &= report(
        matches!(stale, Err(ClientError::InvalidArgument(_))),
        "the same PID with another start time gets no history",
    );
    Ok(all)
}

async fn system_history() -> anyhow::Result<bool> {
    let client = HelperClient::connect().await?;
    let samples = client.system_history(0).await?;
    let last = samples.last();
    let mut all = report(
        samples.len() >= 2
            && last.is_some_and(|s| {
                s.used_kb > 0 && s.pressure.some_avg10.is_some() && s.pressure.faults_per_s >= 0.0
            }),
        &format!(
            "system history has samples with pressure and fault rates ({})",
            samples.len()
        ),
    );
    if let Some(last) = last {
        let newer = client.system_history(last.unix_ms).await?;
        all &= report(
            newer.iter().all(|s| s.unix_ms > last.unix_ms),
            "... and only newer samples when asked since the last one",
        );
    }
    Ok(all)
}

async fn detail(pid: u32) -> anyhow::Result<bool> {
    let client = HelperClient::connect().await?;
    let start = start_time(pid)?;
    let d = client.memory_detail(pid, start, false).await?;
    let mut all = report(
        d.pid == pid
            && 0 < d.pss_kb
            && d.pss_kb <= d.rss_kb
            && 0 < d.uss_kb
            && d.uss_kb <= d.pss_kb,
        &format!(
            "PSS/USS of {pid}: rss {} pss {} uss {}",
            d.rss_kb, d.pss_kb, d.uss_kb
        ),
    );
    let again = client.memory_detail(pid, start, false).await?;
    all &= report(
        again.measured_unix_ms == d.measured_unix_ms,
        "... read at most once per 5 s (a second call gets the same reading)",
    );
    let stale = client.memory_detail(pid, start + 1, false).await;
    all &= report(
        matches!(stale, Err(ClientError::InvalidArgument(_))),
        "... InvalidArgument for a stale start time",
    );
    Ok(all)
}

async fn high_res(pid: u32) -> anyhow::Result<bool> {
    let client = HelperClient::connect().await?;
    let start = start_time(pid)?;
    client.set_high_resolution(pid, start, true, false).await?;
    let until = Instant::now() + Duration::from_secs(5);
    let mut seen = false;
    while !seen && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let s = client.snapshot(SortKey::Pid, true, 1000).await?;
        seen = s
            .processes
            .iter()
            .any(|r| r.pid == pid && r.high_res.is_some());
    }
    client.set_high_resolution(pid, start, false, false).await?;
    Ok(report(
        seen,
        &format!("rows of {pid} carry high-resolution data while it is watched"),
    ))
}

async fn sort_keys() -> anyhow::Result<bool> {
    let client = HelperClient::connect().await?;
    let mut all = true;
    for key in SortKey::ALL {
        for descending in [true, false] {
            let s = client.snapshot(key, descending, 50).await?;
            let rows = &s.processes;
            let ordered = rows
                .windows(2)
                .all(|w| key.order(descending, &w[0], &w[1]) != std::cmp::Ordering::Greater);
            all &= report(
                !rows.is_empty() && rows.len() <= 50 && ordered,
                &format!(
                    "snapshot by {key} {}: {} rows in order",
                    if descending {
                        "descending"
                    } else {
                        "ascending"
                    },
                    rows.len()
                ),
            );
        }
    }
    Ok(all)
}
