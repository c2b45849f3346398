//! What the user asked for during a frame. Panels only push [`Command`]s; the app applies them
//! after the frame, in one place (`MemmonApp::apply_commands`), so nothing a panel draws has
//! side effects.

use std::path::PathBuf;

use memmon_common::{
    apps::AppSortKey, callsites::CallSiteSource, process_key::ProcessKey, snapshot::SortKey,
};

use crate::{
    end_process::Signal,
    model::Subject,
    settings::{SystemMetric, View},
};

#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Sort by this column (a second time: reverse).
    Sort(SortKey),
    /// A click on a process: select it and open its plot.
    Select(ProcessKey),
    /// Keyboard navigation: select it; an open plot follows at once.
    MoveSelection(ProcessKey),
    OpenPlot,
    ClosePlot,
    Interval(u64),
    Filter(String),
    /// Pin or unpin a process or an app (and the process's name, to re-pin it next time).
    TogglePin(Subject, String),
    /// Show the processes or the apps table.
    ShowView(View),
    /// Sort the apps table by this column (a second time: reverse).
    SortApps(AppSortKey),
    /// A click on an app (`open_plot`) or keyboard navigation onto one.
    SelectApp {
        id: String,
        open_plot: bool,
    },
    /// List or hide an app's processes.
    ToggleExpanded(String),
    /// Find and decode the icon of this name (off the UI thread).
    LoadIcon(String),
    SystemMetric(SystemMetric),
    /// The plot panel's new share of the window (the user dragged the split).
    PlotSplit(f32),
    /// Read PSS/USS of a process now.
    MeasureDetail(ProcessKey),
    /// Watch every RSS change of a process (true) or stop (false).
    HighRes(ProcessKey, bool),
    /// Ask for the helper again, interactively (the banner's "Try again").
    RetryHelper,
    ShowOomKills,
    /// The Processes view as a tree, or back to the grid.
    ToggleTree,
    /// Open the confirmation to end this process (the row menu, or Delete).
    AskToEnd(ProcessKey),
    /// Send it this signal (the dialog's "End process" and "Force quit").
    EndProcess(ProcessKey, Signal),
    /// Open the call-site window for a process (its name for the title).
    OpenCallSites(ProcessKey, String),
    /// Start a session in the open call-site window.
    StartCallSites {
        source: CallSiteSource,
        seconds: u32,
    },
    StopCallSites,
    CloseCallSites,
    /// Put text on the clipboard.
    CopyText(String),
    /// Write a file; `None` picks a timestamped name in the Pictures folder.
    Export(Export, Option<PathBuf>),
    /// `--screenshot PATH`: save the window, print what it shows, then close.
    ScreenshotThenQuit(PathBuf),
    Quit,
}

/// Everything the app can write to a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Export {
    /// A PNG of the whole window.
    WindowPng,
    /// A PNG of the process plot's area.
    PlotPng,
    /// The grid's rows (after the filter) as CSV.
    GridCsv,
    /// The snapshot with the grid's rows, as JSON (the schema of `memmon-helper snapshot --json`).
    GridJson,
    /// The selected and pinned processes' histories as CSV.
    SeriesCsv,
    /// The apps table's rows (after the filter) as CSV.
    AppsCsv,
    /// The call-site report as folded stacks (flamegraph.pl, inferno, speedscope).
    CallSitesFolded,
}

impl Export {
    /// The end of the default file name.
    pub fn suffix(self) -> &'static str {
        match self {
            Export::WindowPng => "png",
            Export::PlotPng => "plot.png",
            Export::GridCsv => "grid.csv",
            Export::GridJson => "grid.json",
            Export::SeriesCsv => "series.csv",
            Export::AppsCsv => "apps.csv",
            Export::CallSitesFolded => "callsites.folded",
        }
    }

    pub fn is_picture(self) -> bool {
        matches!(self, Export::WindowPng | Export::PlotPng)
    }
}
