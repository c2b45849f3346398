//! Exports: PNG screenshots of the window or the plot, and the data behind them (the grid as CSV
//! or JSON, the plotted series as CSV). Files go to the Pictures folder (`export_dir`).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use eframe::egui;
use memmon_common::{export, snapshot::Snapshot};

use crate::app::{ExportWhat, MemmonApp};

/// The data files the app can write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataExport {
    GridCsv,
    GridJson,
    /// The selected and pinned processes' histories.
    SeriesCsv,
}

impl MemmonApp {
    /// Saves a PNG of the window (or of the plot's area) asynchronously; the result is shown in
    /// the status bar. `quit` closes the window afterwards (`--screenshot`).
    pub(crate) fn export(
        &mut self,
        ctx: &egui::Context,
        what: ExportWhat,
        path: Option<PathBuf>,
        quit: bool,
    ) {
        let path = path.unwrap_or_else(|| {
            export_dir().join(format!(
                "memmon-{}.png",
                chrono::Local::now().format("%Y%m%d-%H%M%S")
            ))
        });
        let crop = match what {
            ExportWhat::Window => None,
            ExportWhat::Plot => self.plot_rect,
        };
        let pixels_per_point = ctx.pixels_per_point();
        // What the picture shows, for `--screenshot` users (documentation, tests).
        let summary = format!(
            "mode: {}, {} rows, {} with allocation data",
            self.mode_label(),
            self.visible_rows().len(),
            self.visible_rows()
                .iter()
                .filter(|r| r.alloc.is_some())
                .count()
        );
        let done = self.exports.0.clone();
        let ctx2 = ctx.clone();
        ctx.request_screenshot(move |image: Arc<egui::ColorImage>| {
            let image = match crop {
                Some(rect) => image.region(&rect, Some(pixels_per_point)),
                None => (*image).clone(),
            };
            let message = match save_png(&image, &path) {
                Ok(()) => format!("Saved {}", path.display()),
                Err(e) => format!("Could not save {}: {e}", path.display()),
            };
            if quit {
                if message.starts_with("Could not") {
                    eprintln!("memmon: {message}");
                    std::process::exit(1);
                }
                println!("{message} ({summary})");
                ctx2.send_viewport_cmd(egui::ViewportCommand::Close);
            }
            let _ = done.send(message);
            ctx2.request_repaint();
        });
    }

    /// Writes the grid or the plotted series to a file and says where in the status bar.
    pub fn export_data(&mut self, what: DataExport, path: Option<PathBuf>) {
        let (suffix, text) = match what {
            DataExport::GridCsv => ("grid.csv", Ok(self.grid_csv())),
            DataExport::GridJson => ("grid.json", self.grid_json()),
            DataExport::SeriesCsv => ("series.csv", Ok(self.series_csv())),
        };
        let path = path.unwrap_or_else(|| export_dir().join(timestamped(suffix)));
        self.status_message = Some(
            match text.and_then(|t| std::fs::write(&path, t).map_err(anyhow::Error::from)) {
                Ok(()) => format!("Saved {}", path.display()),
                Err(e) => format!("Could not save {}: {e}", path.display()),
            },
        );
    }

    /// The rows the grid shows (after the filter), as CSV.
    pub fn grid_csv(&self) -> String {
        let rows: Vec<_> = self.visible_rows().into_iter().cloned().collect();
        export::grid_csv(&rows)
    }

    /// The current snapshot with the rows the grid shows, as JSON (the schema of
    /// `memmon-helper snapshot --json`).
    pub fn grid_json(&self) -> anyhow::Result<String> {
        let Some(snapshot) = &self.snapshot else {
            anyhow::bail!("no data yet");
        };
        let view = Snapshot {
            processes: self.visible_rows().into_iter().cloned().collect(),
            ..snapshot.clone()
        };
        Ok(serde_json::to_string_pretty(&view)?)
    }

    /// The selected and pinned processes' histories, as CSV.
    pub fn series_csv(&self) -> String {
        let keys = self.selected.iter().chain(self.pinned.iter());
        let mut seen = Vec::new();
        let series: Vec<_> = keys
            .filter(|k| {
                let new = !seen.contains(*k);
                seen.push(**k);
                new
            })
            .filter_map(|k| self.histories.get(k).cloned())
            .collect();
        export::series_csv(&series)
    }
}

fn timestamped(suffix: &str) -> String {
    format!(
        "memmon-{}-{suffix}",
        chrono::Local::now().format("%Y%m%d-%H%M%S")
    )
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

pub fn save_png(image: &egui::ColorImage, path: &std::path::Path) -> anyhow::Result<()> {
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
}
