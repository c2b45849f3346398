//! Exports: PNG screenshots of the window or the plot, and the data behind them (the grid as CSV
//! or JSON, the plotted series as CSV). Files go to the Pictures folder (`export_dir`). Only the
//! app's command step calls the writing functions; the text builders are pure.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, mpsc::Sender},
};

use eframe::egui;
use memmon_common::{apps::apps_csv as apps_table_csv, export, snapshot::Snapshot};

use crate::{command::Export, model::Model};

/// The rows the grid shows (after the filter), as CSV.
pub fn grid_csv(model: &Model) -> String {
    let rows: Vec<_> = model.visible_rows().into_iter().cloned().collect();
    export::grid_csv(&rows)
}

/// The current snapshot with the rows the grid shows, as JSON (the schema of
/// `memmon-helper snapshot --json`).
pub fn grid_json(model: &Model) -> anyhow::Result<String> {
    let Some(snapshot) = &model.snapshot else {
        anyhow::bail!("no data yet");
    };
    let view = Snapshot {
        processes: model.visible_rows().into_iter().cloned().collect(),
        ..snapshot.clone()
    };
    Ok(serde_json::to_string_pretty(&view)?)
}

/// The selected and pinned processes' histories, as CSV.
pub fn series_csv(model: &Model) -> String {
    let series: Vec<_> = model.plotted_series().into_iter().cloned().collect();
    export::series_csv(&series)
}

/// The apps table's rows as last shown (after the filter, in its order), as CSV.
pub fn apps_csv(model: &Model) -> anyhow::Result<String> {
    if model.apps.snapshot.is_none() {
        anyhow::bail!("no apps table yet: open the Apps view (Ctrl+2) first");
    }
    let rows: Vec<_> = model
        .apps
        .visible_rows(&model.filter)
        .into_iter()
        .cloned()
        .collect();
    Ok(apps_table_csv(&rows))
}

/// Where an export goes when the user did not say: a timestamped name in the Pictures folder.
pub fn default_path(what: Export) -> PathBuf {
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    export_dir().join(match what {
        Export::WindowPng => format!("memmon-{stamp}.png"),
        _ => format!("memmon-{stamp}-{}", what.suffix()),
    })
}

/// Writes a data export; returns the status bar's sentence.
pub fn write_data(model: &Model, what: Export, path: &Path) -> String {
    let text = match what {
        Export::GridCsv => Ok(grid_csv(model)),
        Export::GridJson => grid_json(model),
        Export::SeriesCsv => Ok(series_csv(model)),
        Export::AppsCsv => apps_csv(model),
        Export::CallSitesFolded => match &model.callsites.report {
            Some(report) => Ok(report.folded()),
            None => Err(anyhow::anyhow!("no call-site report yet")),
        },
        Export::WindowPng | Export::PlotPng => Err(anyhow::anyhow!("a picture is not data")),
    };
    match text.and_then(|t| std::fs::write(path, t).map_err(anyhow::Error::from)) {
        Ok(()) => format!("Saved {}", path.display()),
        Err(e) => format!("Could not save {}: {e}", path.display()),
    }
}

/// What to do once a screenshot is saved.
pub struct Screenshot {
    pub path: PathBuf,
    /// Only this part of the window (points), e.g. the plot.
    pub crop: Option<egui::Rect>,
    /// `--screenshot`: print this summary with the path, then close the window (exit 1 if the
    /// file cannot be written).
    pub quit_with_summary: Option<String>,
    /// Where the status bar's sentence goes.
    pub done: Sender<String>,
}

/// Asks egui for a screenshot and saves it as PNG when it arrives (after this frame).
pub fn request_png(ctx: &egui::Context, shot: Screenshot) {
    let pixels_per_point = ctx.pixels_per_point();
    let ctx2 = ctx.clone();
    ctx.request_screenshot(move |image: Arc<egui::ColorImage>| {
        let image = match shot.crop {
            Some(rect) => image.region(&rect, Some(pixels_per_point)),
            None => (*image).clone(),
        };
        let path = &shot.path;
        let message = match save_png(&image, path) {
            Ok(()) => format!("Saved {}", path.display()),
            Err(e) => format!("Could not save {}: {e}", path.display()),
        };
        if let Some(summary) = &shot.quit_with_summary {
            if message.starts_with("Could not") {
                eprintln!("memmon: {message}");
                std::process::exit(1);
            }
            println!("{message} ({summary})");
            ctx2.send_viewport_cmd(egui::ViewportCommand::Close);
        }
        let _ = shot.done.send(message);
        ctx2.request_repaint();
    });
}

/// The Pictures folder: `$XDG_PICTURES_DIR`, else what `user-dirs.dirs` says (also what Flatpak
/// writes for `--filesystem=xdg-pictures`), else `~/Pictures`, else the current folder.
pub fn export_dir() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".config")));
    let from_user_dirs = config
        .and_then(|c| std::fs::read_to_string(c.join("user-dirs.dirs")).ok())
        .and_then(|text| pictures_in_user_dirs(&text, home.as_deref()));
    std::env::var_os("XDG_PICTURES_DIR")
        .map(PathBuf::from)
        .into_iter()
        .chain(from_user_dirs)
        .chain(home.map(|h| h.join("Pictures")))
        .find(|d| d.is_dir())
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `XDG_PICTURES_DIR="$HOME/Bilder"` → `/home/me/Bilder` (the xdg-user-dirs format).
pub fn pictures_in_user_dirs(text: &str, home: Option<&Path>) -> Option<PathBuf> {
    let value = text.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("XDG_PICTURES_DIR=")?;
        Some(rest.trim().trim_matches('"').to_owned())
    })?;
    match value.strip_prefix("$HOME") {
        Some(rest) => Some(home?.join(rest.trim_start_matches('/'))),
        None if value.starts_with('/') => Some(PathBuf::from(value)),
        None => None,
    }
}

pub fn save_png(image: &egui::ColorImage, path: &Path) -> anyhow::Result<()> {
    let [w, h] = image.size;
    let rgba: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_array()).collect();
    let buffer = image::RgbaImage::from_raw(w as u32, h as u32, rgba)
        .ok_or_else(|| anyhow::anyhow!("the screenshot has an inconsistent size"))?;
    buffer.save_with_format(path, image::ImageFormat::Png)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_dirs_are_read_like_xdg_user_dirs_writes_them() {
        let home = Path::new("/home/me");
        let text = "# written by xdg-user-dirs-update\nXDG_DESKTOP_DIR=\"$HOME/Desktop\"\n\
                    XDG_PICTURES_DIR=\"$HOME/Bilder\"\n";
        assert_eq!(
            pictures_in_user_dirs(text, Some(home)),
            Some(PathBuf::from("/home/me/Bilder"))
        );
        assert_eq!(
            pictures_in_user_dirs("XDG_PICTURES_DIR=\"/data/pics\"", Some(home)),
            Some(PathBuf::from("/data/pics"))
        );
        assert_eq!(
            pictures_in_user_dirs("XDG_MUSIC_DIR=\"$HOME/M\"", Some(home)),
            None
        );
        assert_eq!(
            pictures_in_user_dirs("XDG_PICTURES_DIR=\"rel\"", Some(home)),
            None
        );
    }

    #[test]
    fn default_names_end_with_what_they_hold() {
        let name = |w| {
            default_path(w)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        assert!(name(Export::WindowPng).ends_with(".png"));
        assert!(!name(Export::WindowPng).ends_with("-png"));
        assert!(name(Export::SeriesCsv).ends_with("-series.csv"));
    }
}
