//! `memmon-helper export`: the collector, run continuously, scraped by Prometheus.
//!
//! One thread collects every interval and encodes the tick once ([`metrics`]); the HTTP server
//! ([`http`]) hands that encoding to every scrape until the next tick, so a scrape costs no
//! /proc reading at all and concurrent scrapes share one buffer.

pub mod http;
pub mod metrics;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use tokio::sync::watch;

use crate::Collector;
use metrics::{ExporterStats, Exposition, Metrics, Selection};

/// Collects every `interval` until `stop` is set (and the thread unparked), publishing each
/// tick's encoding on `publish`. A failed collection keeps the previous one published.
pub fn collect_loop(
    mut collector: Collector,
    interval: Duration,
    selection: Selection,
    publish: watch::Sender<Option<Exposition>>,
    stop: Arc<AtomicBool>,
) {
    let (mut scans, mut errors) = (0u64, 0u64);
    let mut previous = metrics::Seen::new();
    let mut next = Instant::now();
    while !stop.load(Ordering::Acquire) {
        match collector.collect() {
            Ok(snapshot) => {
                scans += 1;
                let metrics = Metrics::from_tick(
                    &snapshot,
                    &previous,
                    collector.apps().rows(),
                    collector.vm_counters(),
                    selection,
                    ExporterStats::read_self(scans, errors),
                );
                previous = metrics::seen(&snapshot);
                match metrics.encode() {
                    Ok(exposition) => {
                        publish.send_replace(Some(exposition));
                    }
                    Err(err) => log::error!("encoding the metrics failed: {err}"),
                }
            }
            Err(err) => {
                errors += 1;
                log::warn!("collection failed (the previous one is served): {err}");
            }
        }
        next += interval;
        let now = Instant::now();
        if next < now {
            // A tick took longer than the interval (or the machine was suspended): start again
            // from now rather than catching up.
            next = now;
        }
        while !stop.load(Ordering::Acquire) {
            let now = Instant::now();
            if now >= next {
                break;
            }
            thread::park_timeout(next - now);
        }
    }
}
