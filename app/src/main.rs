//! `memmon`: Memory Monitor's window.
use std::{path::PathBuf, sync::mpsc};

use anyhow::Context as _;
use clap::Parser;
use eframe::egui;
use memmon::{
    app::MemmonApp,
    settings::Settings,
    source::{self, SourceChoice},
};

#[derive(Parser)]
#[command(
    name = "memmon",
    version,
    about = "Memory Monitor: which processes use memory and how that changes"
)]
struct Cli {
    /// Where data comes from: the helper (Full mode), the embedded /proc collector, or auto.
    #[arg(long, value_enum, default_value = "auto")]
    source: SourceChoice,
    /// Save a PNG of the window once the first data is shown, then exit.
    #[arg(long, value_name = "PATH")]
    screenshot: Option<PathBuf>,
    /// With --screenshot: wait until this many seconds after launch (history to show), then save.
    #[arg(long, value_name = "SECS", requires = "screenshot")]
    screenshot_after: Option<f64>,
    /// Select this PID (and open its plot) at start.
    #[arg(long, value_name = "PID")]
    select: Option<u32>,
    /// Sort by this column at start (descending), instead of the remembered one: pid, name,
    /// rss, growth, … (the CLI's sort keys).
    #[arg(long, value_name = "KEY")]
    sort: Option<memmon_common::snapshot::SortKey>,
    /// Show this table at start instead of the remembered one: processes or apps.
    #[arg(long, value_enum, value_name = "VIEW")]
    view: Option<memmon::settings::View>,
    /// Show the processes as a tree at start (parents, children and subtree totals).
    #[arg(long)]
    tree: bool,
    /// Open the list of OOM kills at start.
    #[arg(long)]
    show_oom_kills: bool,
    /// Colours: follow the desktop's light or dark preference, or force one.
    #[arg(long, value_enum, default_value = "system")]
    theme: Theme,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Theme {
    System,
    Light,
    Dark,
}

impl From<Theme> for egui::ThemePreference {
    fn from(theme: Theme) -> Self {
        match theme {
            Theme::System => egui::ThemePreference::System,
            Theme::Light => egui::ThemePreference::Light,
            Theme::Dark => egui::ThemePreference::Dark,
        }
    }
}

fn main() -> anyhow::Result<()> {
    let launched = std::time::Instant::now();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let options = eframe::NativeOptions {
        renderer: eframe::Renderer::Glow,
        viewport: egui::ViewportBuilder::default()
            .with_title("Memory Monitor")
            .with_app_id("io.github.memmon.MemoryMonitor")
            .with_inner_size([1280.0, 760.0]),
        persist_window: cli.screenshot.is_none(),
        ..Default::default()
    };
    eframe::run_native(
        "io.github.memmon.MemoryMonitor",
        options,
        Box::new(move |cc| {
            cc.egui_ctx.set_theme(cli.theme);
            let mut settings: Settings = if cli.screenshot.is_some() {
                Settings::default()
            } else {
                cc.storage
                    .and_then(|s| eframe::get_value(s, eframe::APP_KEY))
                    .unwrap_or_default()
            };
            if let Some(key) = cli.sort {
                settings.sort = key;
                settings.descending = true;
            }
            if let Some(view) = cli.view {
                settings.view = view;
            }
            settings.process_tree |= cli.tree;
            let (request_tx, request_rx) = mpsc::channel();
            let (update_tx, update_rx) = mpsc::channel();
            let ctx = cc.egui_ctx.clone();
            // A zero-delay request makes egui paint twice ("to let things settle"); new data
            // needs one frame, so ask with a 1 ms delay: one frame per update.
            source::spawn(cli.source, request_rx, update_tx, move || {
                ctx.request_repaint_after(std::time::Duration::from_millis(1))
            })
            .context("starting the data source thread")?;
            let mut app = MemmonApp::new(settings, update_rx, request_tx);
            app.screenshot_then_quit = cli.screenshot.clone();
            if let Some(secs) = cli.screenshot_after {
                app.screenshot_after = std::time::Duration::from_secs_f64(secs.max(0.0));
            }
            if cli.show_oom_kills {
                app.commands.push(memmon::command::Command::ShowOomKills);
            }
            app.launched = launched;
            if let Some(pid) = cli.select {
                app.select_pid_when_seen(pid);
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}
