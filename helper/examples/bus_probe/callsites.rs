//! Call-site sessions as a client sees them over D-Bus.
//!
//! - `callsites WORKLOAD`: a leaking child of this user (`WORKLOAD pattern leak`); a mappings
//!   session finds its leak in the right function, a heap session probes its libc; sessions
//!   belong to their connection; bad arguments are refused.
//! - `callsites-leave WORKLOAD`: starts a one-minute session and exits without stopping it
//!   (the harness checks the helper detached it).

use std::{
    io::BufRead as _,
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::Context as _;
use memmon_common::callsites::{CallSiteReport, CallSiteSource, SessionState};
use memmon_helper::client::{ClientError, HelperClient};
use tokio::time::Instant;

use super::{report, start_time};

/// The child, killed when this probe ends.
struct Leaker(Child);

impl Drop for Leaker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn leaker(workload: &str) -> anyhow::Result<Leaker> {
    let mut child = Command::new(workload)
        .args(["pattern", "leak", "--mib", "4", "--seconds", "120"])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the workload")?;
    let out = child.stdout.take().context("workload stdout")?;
    let mut line = String::new();
    std::io::BufReader::new(out).read_line(&mut line)?;
    anyhow::ensure!(line.trim() == "ready", "workload said {line:?}");
    Ok(Leaker(child))
}

/// Polls the session until it ends (or `limit` passes).
async fn until_finished(
    client: &HelperClient,
    id: u32,
    limit: Duration,
) -> anyhow::Result<CallSiteReport> {
    let until = Instant::now() + limit;
    loop {
        let r = client.call_sites(id).await?;
        if !r.is_running() || Instant::now() > until {
            return Ok(r);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub async fn callsites(workload: &str) -> anyhow::Result<bool> {
    let child = leaker(workload)?;
    let pid = child.0.id();
    let start = start_time(pid)?;
    let client = HelperClient::connect().await?;

    let id = client
        .start_call_sites(pid, start, CallSiteSource::Mappings, 3, 0, false)
        .await?;
    let running = client.call_sites(id).await?;
    let mut all = report(
        running.pid == pid && running.source == CallSiteSource::Mappings,
        &format!("StartCallSites(mappings) on PID {pid}: session {id}, read while it runs"),
    );
    let r = until_finished(&client, id, Duration::from_secs(15)).await?;
    let top = r.sites.first();
    let leaking_fn = top.is_some_and(|s| {
        s.frames
            .iter()
            .any(|f| f.function.as_deref().is_some_and(|n| n.contains("Touched")))
    });
    all &= report(
        matches!(r.state, SessionState::Finished(_))
            && top.is_some_and(|s| s.outstanding_bytes >= 4 << 20)
            && leaking_fn,
        &format!(
            "... finished with the leak on top: {} outstanding in a stack through Touched::new \
             ({:?})",
            top.map_or(0, |s| s.outstanding_bytes),
            top.map(|s| s.frames.iter().map(|f| f.label()).collect::<Vec<_>>())
        ),
    );

    // Another connection cannot read or stop it.
    let other = HelperClient::connect().await?;
    all &= report(
        matches!(
            other.call_sites(id).await,
            Err(ClientError::InvalidArgument(_))
        ) && matches!(
            other.stop_call_sites(id).await,
            Err(ClientError::InvalidArgument(_))
        ),
        "... another connection can neither read nor stop it",
    );

    // The heap source needs uprobes, which this kernel creates only with CAP_SYS_ADMIN; the
    // service keeps no such capability, so it must refuse clearly (or, on a kernel that lets
    // CAP_PERFMON create them, work).
    match client
        .start_call_sites(pid, start, CallSiteSource::Heap, 30, 4, false)
        .await
    {
        Ok(heap) => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            client.stop_call_sites(heap).await?;
            let r = until_finished(&client, heap, Duration::from_secs(10)).await?;
            all &= report(
                r.probed.iter().any(|m| m.starts_with("libc.so"))
                    && r.sample_every == 4
                    && r.state == SessionState::Finished("stopped by its client".into()),
                &format!(
                    "a heap session probes the child's libc ({:?}), samples 1 in 4, and stops \
                     when asked ({:?})",
                    r.probed, r.state
                ),
            );
        }
        Err(e) => {
            all &= report(
                matches!(&e, ClientError::InvalidArgument(m) if m.contains("CAP_SYS_ADMIN")
                    && m.contains("mappings source")),
                &format!("a heap session is refused with the reason and what to do instead ({e})"),
            );
        }
    }
    all &= report(
        matches!(
            client.call_sites(id).await,
            Err(ClientError::InvalidArgument(_))
        ),
        "... starting it ended (and forgot) the connection's previous session",
    );

    for (what, source, seconds, start_time) in [
        ("0 seconds", "mappings", 0, start),
        ("601 seconds", "mappings", 601, start),
        ("an unknown source", "stack", 5, start),
        ("a stale start time", "mappings", 5, start + 1),
    ] {
        let r = client
            .start_call_sites(
                pid,
                start_time,
                source.parse().unwrap_or(CallSiteSource::Mappings),
                seconds,
                0,
                false,
            )
            .await;
        // An unknown source cannot be built through the typed client: send it raw.
        let r = if source == "stack" {
            raw_start(pid, start_time, source, seconds).await
        } else {
            r.map(|_| ())
        };
        all &= report(
            matches!(r, Err(ClientError::InvalidArgument(_))),
            &format!("StartCallSites refuses {what} ({:?})", r.err()),
        );
    }
    Ok(all)
}

async fn raw_start(pid: u32, start: u64, source: &str, seconds: u32) -> Result<(), ClientError> {
    let proxy = super::proxy()
        .await
        .map_err(|e| ClientError::Bus(e.to_string()))?;
    let r: zbus::Result<u32> = proxy
        .call("StartCallSites", &(pid, start, source, seconds, 0u32))
        .await;
    match r {
        Ok(_) => Ok(()),
        Err(zbus::Error::MethodError(name, msg, _)) if name.ends_with("InvalidArgument") => {
            Err(ClientError::InvalidArgument(msg.unwrap_or_default()))
        }
        Err(e) => Err(ClientError::Bus(e.to_string())),
    }
}

pub async fn leave(workload: &str) -> anyhow::Result<bool> {
    let child = leaker(workload)?;
    let pid = child.0.id();
    let client = HelperClient::connect().await?;
    let id = client
        .start_call_sites(
            pid,
            start_time(pid)?,
            CallSiteSource::Mappings,
            60,
            0,
            false,
        )
        .await?;
    // Leaves the bus with the session running (the child goes too).
    Ok(report(
        id > 0,
        &format!("a 60 s mappings session {id} started on PID {pid}; leaving"),
    ))
}
