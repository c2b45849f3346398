//! The encoding of [`Metrics`] through the client library's `Collector` trait: one function per
//! group of families, each family written only when it has samples.

use std::fmt;

use memmon_common::{
    diagnostics::{OomKill, OomSource},
    snapshot::Mode,
};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeCounterValue, EncodeLabelSet, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Unit,
};

use super::{AppSeries, Metrics, ProcessSeries, kib};

/// Writes one metric family if it has at least one sample (an empty family says nothing and
/// some parsers reject it).
fn family<L: EncodeLabelSet, V: Copy>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    kind: MetricType,
    samples: impl IntoIterator<Item = (L, V)>,
    write: impl Fn(V, prometheus_client::encoding::MetricEncoder) -> fmt::Result,
) -> fmt::Result {
    let mut samples = samples.into_iter().peekable();
    if samples.peek().is_none() {
        return Ok(());
    }
    let mut metric = encoder.encode_descriptor(name, help, unit.as_ref(), kind)?;
    for (labels, value) in samples {
        write(value, metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauges<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    samples: impl IntoIterator<Item = (L, f64)>,
) -> fmt::Result {
    family(
        encoder,
        name,
        help,
        unit,
        MetricType::Gauge,
        samples,
        |v, m| ConstGauge::new(v).encode(m),
    )
}

/// Counters: `u64` for counts (exact), `f64` for seconds and bytes.
fn counters<L: EncodeLabelSet, V: EncodeCounterValue + Copy>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    samples: impl IntoIterator<Item = (L, V)>,
) -> fmt::Result {
    family(
        encoder,
        name,
        help,
        unit,
        MetricType::Counter,
        samples,
        |v, m| ConstCounter::new(v).encode(m),
    )
}

fn infos<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label_sets: impl IntoIterator<Item = L>,
) -> fmt::Result {
    let mut sets = label_sets.into_iter().peekable();
    if sets.peek().is_none() {
        return Ok(());
    }
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Info)?;
    for labels in sets {
        metric.encode_info(&labels)?;
    }
    Ok(())
}

type NoLabels = [(&'static str, &'static str); 0];
const NO_LABELS: NoLabels = [];

fn one(value: Option<f64>) -> Option<(NoLabels, f64)> {
    value.map(|v| (NO_LABELS, v))
}

fn one_count(value: Option<u64>) -> Option<(NoLabels, u64)> {
    value.map(|v| (NO_LABELS, v))
}

const BYTES: Option<Unit> = Some(Unit::Bytes);
const SECONDS: Option<Unit> = Some(Unit::Seconds);

fn bytes_per_second() -> Option<Unit> {
    Some(Unit::Other("bytes_per_second".to_owned()))
}

impl Collector for Metrics {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        self.encode_machine(&mut e)?;
        self.encode_processes(&mut e)?;
        self.encode_apps(&mut e)?;
        self.encode_exporter(&mut e)
    }
}

impl Metrics {
    fn encode_machine(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        let [total, available, swap_total, swap_free] = self.memory;
        gauges(
            e,
            "memmon_memory_total",
            "Physical memory (MemTotal).",
            BYTES,
            one(Some(total)),
        )?;
        gauges(
            e,
            "memmon_memory_available",
            "Memory available for new work without swapping (MemAvailable).",
            BYTES,
            one(Some(available)),
        )?;
        gauges(
            e,
            "memmon_swap_total",
            "Swap space (SwapTotal).",
            BYTES,
            one(Some(swap_total)),
        )?;
        gauges(
            e,
            "memmon_swap_free",
            "Unused swap space (SwapFree).",
            BYTES,
            one(Some(swap_free)),
        )?;
        let kinds = |values: [Option<f64>; 2]| {
            ["some", "full"]
                .into_iter()
                .zip(values)
                .filter_map(|(kind, v)| v.map(|v| ([("kind", kind)], v)))
        };
        gauges(
            e,
            "memmon_memory_pressure_avg10",
            "Share of the last 10 s in which some (kind=some) or all (kind=full) non-idle tasks \
             stalled on memory (PSI avg10, 0-1).",
            Some(Unit::Other("ratio".to_owned())),
            kinds(self.psi_avg10),
        )?;
        counters(
            e,
            "memmon_memory_pressure_stalled",
            "Time some (kind=some) or all (kind=full) non-idle tasks stalled on memory since \
             boot (PSI total).",
            SECONDS,
            kinds(self.psi_total_s),
        )?;
        if let Some(vm) = self.vm {
            let pages = |n: u64| n as f64 * self.page_size as f64;
            counters(
                e,
                "memmon_swap_in",
                "Memory read back from swap since boot (pswpin pages x page size).",
                BYTES,
                one(Some(pages(vm.pswpin))),
            )?;
            counters(
                e,
                "memmon_swap_out",
                "Memory written out to swap since boot (pswpout pages x page size).",
                BYTES,
                one(Some(pages(vm.pswpout))),
            )?;
            counters(
                e,
                "memmon_page_faults",
                "Page faults since boot, minor and major (pgfault).",
                None,
                one_count(Some(vm.pgfault)),
            )?;
            counters(
                e,
                "memmon_major_page_faults",
                "Page faults that needed I/O since boot (pgmajfault).",
                None,
                one_count(Some(vm.pgmajfault)),
            )?;
        }
        counters(
            e,
            "memmon_oom_kills",
            "Processes the kernel's OOM killer ended since boot, system-wide and in memory-limited \
             cgroups (oom_kill of /proc/vmstat).",
            None,
            one_count(self.oom_kills_total),
        )?;
        infos(
            e,
            "memmon_oom_victim",
            "The last OOM-killed processes (at most 10): pid, comm, and how the victim was named \
             (tracepoint: by the kernel; counter: the largest process gone when oom_kill rose).",
            self.victims.iter().map(victim_labels),
        )?;
        gauges(
            e,
            "memmon_oom_victim_killed_timestamp",
            "When each of the last OOM victims was killed (Unix time).",
            SECONDS,
            self.victims
                .iter()
                .map(|v| (victim_key(v), v.unix_ms as f64 / 1000.0)),
        )?;
        gauges(
            e,
            "memmon_oom_victim_resident_memory",
            "The RSS of each of the last OOM victims when it was last sampled.",
            BYTES,
            self.victims
                .iter()
                .filter_map(|v| v.last_rss_kb.map(|kb| (victim_key(v), kib(kb)))),
        )?;
        gauges(
            e,
            "memmon_processes",
            "Processes the last scan saw.",
            None,
            one(Some(self.process_count as f64)),
        )?;
        gauges(
            e,
            "memmon_ebpf_enabled",
            "1 when the eBPF programs count every process's mmap/munmap/brk (--ebpf), else 0.",
            None,
            one(Some(if self.mode == Mode::Full { 1.0 } else { 0.0 })),
        )?;
        counters(
            e,
            "memmon_ebpf_dropped_events",
            "Allocation events the eBPF programs could not record because a map was full.",
            None,
            one_count(self.bpf_drops),
        )
    }

    fn encode_processes(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        let p = &self.processes;
        let each = |f: fn(&ProcessSeries) -> Option<f64>| {
            p.iter()
                .filter_map(move |s| f(s).map(|v| (s.labels.clone(), v)))
        };
        let count_each = |f: fn(&ProcessSeries) -> Option<u64>| {
            p.iter()
                .filter_map(move |s| f(s).map(|v| (s.labels.clone(), v)))
        };
        gauges(
            e,
            "memmon_process_resident_memory",
            "Resident set size (VmRSS) of the top processes by RSS and by growth.",
            BYTES,
            each(|s| s.rss),
        )?;
        gauges(
            e,
            "memmon_process_peak_resident_memory",
            "The highest RSS the process reached (VmHWM).",
            BYTES,
            each(|s| s.peak_rss),
        )?;
        gauges(
            e,
            "memmon_process_swap",
            "Swapped-out memory of the process (VmSwap).",
            BYTES,
            each(|s| s.swap),
        )?;
        gauges(
            e,
            "memmon_process_resident_memory_growth",
            "RSS growth rate: Theil-Sen slope over 5 minutes (1 minute while younger), 0 when \
             within the noise.",
            bytes_per_second(),
            each(|s| s.growth),
        )?;
        gauges(
            e,
            "memmon_process_growth_sustained",
            "1 when RSS has not fallen back for 2 minutes and rose at least 1 MiB in the last 2.",
            None,
            each(|s| s.sustained.map(|b| f64::from(u8::from(b)))),
        )?;
        gauges(
            e,
            "memmon_process_net_mapped",
            "Bytes mapped minus unmapped by mmap/munmap/brk since tracking began (eBPF).",
            BYTES,
            each(|s| s.net_mapped),
        )?;
        counters(
            e,
            "memmon_process_mmap_calls",
            "Successful mmap calls (eBPF).",
            None,
            count_each(|s| s.mmap),
        )?;
        counters(
            e,
            "memmon_process_munmap_calls",
            "Successful munmap calls (eBPF).",
            None,
            count_each(|s| s.munmap),
        )?;
        counters(
            e,
            "memmon_process_brk_calls",
            "brk calls that moved the program break (eBPF).",
            None,
            count_each(|s| s.brk),
        )
    }

    fn encode_apps(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        let a = &self.apps;
        let each = |f: fn(&AppSeries) -> Option<f64>| {
            a.iter()
                .filter_map(move |s| f(s).map(|v| (s.id.clone(), v)))
        };
        infos(
            e,
            "memmon_app",
            "Each app (processes grouped by systemd unit / cgroup): its name, kind and unit.",
            a.iter().map(|s| s.info.clone()),
        )?;
        gauges(
            e,
            "memmon_app_memory",
            "The app's memory: its cgroup's memory.current (anon + page cache + kernel) where \
             the cgroup is its own, else the sum of its processes' RSS.",
            BYTES,
            each(|s| Some(s.memory)),
        )?;
        gauges(
            e,
            "memmon_app_anon_memory",
            "Anonymous memory charged to the app's cgroup.",
            BYTES,
            each(|s| s.anon),
        )?;
        gauges(
            e,
            "memmon_app_page_cache",
            "Page cache charged to the app's cgroup.",
            BYTES,
            each(|s| s.page_cache),
        )?;
        gauges(
            e,
            "memmon_app_swap",
            "Swap used by the app.",
            BYTES,
            each(|s| Some(s.swap)),
        )?;
        gauges(
            e,
            "memmon_app_memory_growth",
            "Growth rate of the app's memory (Theil-Sen, as for processes).",
            bytes_per_second(),
            each(|s| s.growth),
        )?;
        gauges(
            e,
            "memmon_app_growth_sustained",
            "1 when the app's memory has not fallen back for 2 minutes and rose at least 1 MiB.",
            None,
            each(|s| s.sustained.map(|b| f64::from(u8::from(b)))),
        )?;
        gauges(
            e,
            "memmon_app_memory_limit",
            "The hard memory limit of the app's cgroup (memory.max); absent when unlimited.",
            BYTES,
            each(|s| s.limit),
        )?;
        gauges(
            e,
            "memmon_app_processes",
            "Processes in the app.",
            None,
            each(|s| Some(s.processes)),
        )?;
        let event = |i: usize| {
            a.iter()
                .filter_map(move |s| s.events.map(|ev| (s.id.clone(), ev[i])))
        };
        counters(
            e,
            "memmon_app_oom_events",
            "Times the OOM killer was invoked for the app's cgroup (memory.events oom).",
            None,
            event(0),
        )?;
        counters(
            e,
            "memmon_app_oom_kills",
            "Processes the OOM killer ended in the app's cgroup (memory.events oom_kill).",
            None,
            event(1),
        )?;
        counters(
            e,
            "memmon_app_memory_limit_hits",
            "Times the app's cgroup hit its hard limit (memory.events max).",
            None,
            event(2),
        )?;
        counters(
            e,
            "memmon_app_memory_high_throttles",
            "Times the app's cgroup was throttled above memory.high (memory.events high).",
            None,
            event(3),
        )
    }

    fn encode_exporter(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        infos(
            e,
            "memmon_exporter_build",
            "The exporter's version and collection mode (full: eBPF and /proc; proc-only).",
            [[
                ("version", self.version),
                (
                    "mode",
                    if self.mode == Mode::Full {
                        "full"
                    } else {
                        "proc-only"
                    },
                ),
            ]],
        )?;
        gauges(
            e,
            "memmon_scan_duration",
            "How long the last collection (/proc scan, apps, trends) took.",
            SECONDS,
            one(Some(self.scan_seconds)),
        )?;
        gauges(
            e,
            "memmon_last_scan_timestamp",
            "When the last collection ran (Unix time).",
            SECONDS,
            one(Some(self.taken_at_s)),
        )?;
        counters(
            e,
            "memmon_scans",
            "Collections since the exporter started.",
            None,
            one_count(Some(self.stats.scans)),
        )?;
        counters(
            e,
            "memmon_scan_errors",
            "Collections that failed (the previous one is served meanwhile).",
            None,
            one_count(Some(self.stats.scan_errors)),
        )?;
        counters(
            e,
            "process_cpu",
            "CPU time the exporter used (user + system).",
            SECONDS,
            one(Some(self.stats.cpu_seconds)),
        )?;
        gauges(
            e,
            "process_resident_memory",
            "The exporter's resident memory.",
            BYTES,
            one(Some(self.stats.resident_bytes as f64)),
        )?;
        gauges(
            e,
            "process_virtual_memory",
            "The exporter's virtual memory.",
            BYTES,
            one(Some(self.stats.virtual_bytes as f64)),
        )?;
        gauges(
            e,
            "process_open_fds",
            "The exporter's open file descriptors.",
            None,
            one(Some(self.stats.open_fds as f64)),
        )
    }
}

fn victim_key(v: &OomKill) -> [(&'static str, String); 2] {
    [("pid", v.pid.to_string()), ("comm", v.name.clone())]
}

fn victim_labels(v: &OomKill) -> [(&'static str, String); 3] {
    let [pid, comm] = victim_key(v);
    let source = match v.source {
        OomSource::Tracepoint => "tracepoint",
        OomSource::Counter => "counter",
    };
    [pid, comm, ("source", source.to_owned())]
}
