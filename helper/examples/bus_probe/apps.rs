//! `apps ID DIR PID`: the app `ID` (its cgroup's memory files in `DIR`, holding process `PID`),
//! made by the harness for this check, as a client sees it over D-Bus.

use memmon_common::apps::AppSortKey;
use memmon_helper::client::{ClientError, HelperClient};

use super::report;

/// The cgroup's own usage, KiB (v2 `memory.current` or v1 `memory.usage_in_bytes`).
fn usage_kb(dir: &str) -> anyhow::Result<u64> {
    let read = |name: &str| std::fs::read_to_string(format!("{dir}/{name}"));
    let text = read("memory.current").or_else(|_| read("memory.usage_in_bytes"))?;
    Ok(text.trim().parse::<u64>()? / 1024)
}

pub async fn apps(id: &str, dir: &str, pid: u32) -> anyhow::Result<bool> {
    let client = HelperClient::connect().await?;
    let snap = client.apps(AppSortKey::Memory, true, 1000, &[id]).await?;
    let usage = usage_kb(dir)?;
    let Some(app) = snap.apps.iter().find(|a| a.id == id) else {
        let ids: Vec<&str> = snap.apps.iter().map(|a| a.id.as_str()).collect();
        return Ok(report(
            false,
            &format!("GetApps lists {id} (it lists {ids:?})"),
        ));
    };
    let mut all = report(
        app.memory_covers.is_none() && app.memory_kb().abs_diff(usage) * 50 <= usage,
        &format!(
            "GetApps: {id}'s memory is its cgroup's own counter ({} KiB, counter {usage} KiB)",
            app.memory_kb()
        ),
    );
    all &= report(
        app.process_count == 1 && app.processes.iter().any(|p| p.pid == pid),
        &format!("... its one process {pid} is listed when expanded"),
    );
    let ordered = snap
        .apps
        .windows(2)
        .all(|w| w[0].memory_kb() >= w[1].memory_kb());
    all &= report(ordered, "... apps come largest memory first");
    let history = client.app_history(id).await?;
    all &= report(
        !history.samples.is_empty() && history.samples.iter().all(|s| s.process_count == 1),
        &format!("GetAppHistory: {} samples of {id}", history.samples.len()),
    );
    let many: Vec<String> = (0..17).map(|i| format!("app:{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let long = "x".repeat(2_000);
    for (what, result) in [
        (
            "17 expanded apps",
            client
                .apps(AppSortKey::Memory, true, 10, &many)
                .await
                .map(drop),
        ),
        (
            "a 2,000-byte id",
            client
                .apps(AppSortKey::Memory, true, 10, &[&long])
                .await
                .map(drop),
        ),
        (
            "limit 0",
            client
                .apps(AppSortKey::Memory, true, 0, &[])
                .await
                .map(drop),
        ),
        (
            "an unknown app's history",
            client.app_history("app:none").await.map(drop),
        ),
        (
            "a 2,000-byte history id",
            client.app_history(&long).await.map(drop),
        ),
    ] {
        all &= report(
            matches!(result, Err(ClientError::InvalidArgument(_))),
            &format!("{what} gets InvalidArgument"),
        );
    }
    Ok(all)
}
