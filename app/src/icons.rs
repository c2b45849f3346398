//! App icons for the Apps view. A desktop entry's icon name is resolved in the icon theme
//! (`freedesktop-icons`), PNG only, preferring 32 then 24 px, and decoded and scaled to
//! [`ICON_PX`] on a background thread ([`IconLoader`], started by the app's command step); the
//! textures live in a bounded cache owned by the panel ([`IconCache`]). An icon that is missing,
//! SVG-only or unreadable is drawn as a coloured letter (no SVG renderer is linked).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        OnceLock,
        mpsc::{self, Receiver, Sender},
    },
};

use eframe::egui;

/// Icons are scaled to fit this many pixels (rows draw them at 16 points).
pub const ICON_PX: u32 = 32;
/// Textures kept at most; the least recently drawn go first.
pub const MAX_ICONS: usize = 256;
/// Larger files are not decoded (an app icon is a few KiB).
const MAX_FILE_BYTES: u64 = 2 << 20;
/// Sizes looked up in order: the ones closest to what is drawn first.
const SIZES: [u16; 6] = [32, 24, 48, 22, 64, 16];

/// The PNG file for an icon name (or an absolute path from the desktop entry).
pub fn find_png(icon: &str) -> Option<PathBuf> {
    if icon.starts_with('/') {
        let path = Path::new(icon);
        return is_png(path).then(|| path.to_owned());
    }
    if icon.is_empty() || icon.contains('/') {
        return None;
    }
    static THEME: OnceLock<Option<String>> = OnceLock::new();
    let theme = THEME.get_or_init(freedesktop_icons::default_theme_gtk);
    SIZES.iter().find_map(|&size| {
        let lookup = freedesktop_icons::lookup(icon).with_size(size);
        let found = match theme {
            Some(theme) => lookup.with_theme(theme).find(),
            None => lookup.find(),
        };
        found.filter(|p| is_png(p))
    })
}

fn is_png(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"))
}

/// The icon decoded and scaled to fit [`ICON_PX`], or `None` (draw a letter).
pub fn load(icon: &str) -> Option<egui::ColorImage> {
    let path = find_png(icon)?;
    match decode(&path) {
        Ok(image) => Some(image),
        Err(e) => {
            log::debug!("icon {icon} ({}): {e}", path.display());
            None
        }
    }
}

fn decode(path: &Path) -> anyhow::Result<egui::ColorImage> {
    let size = std::fs::metadata(path)?.len();
    anyhow::ensure!(
        size <= MAX_FILE_BYTES,
        "{size} bytes is too large for an icon"
    );
    let mut reader = image::ImageReader::open(path)?;
    reader.set_format(image::ImageFormat::Png);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(1024);
    limits.max_image_height = Some(1024);
    reader.limits(limits);
    let image = reader.decode()?;
    let image = if image.width() > ICON_PX || image.height() > ICON_PX {
        image.thumbnail(ICON_PX, ICON_PX)
    } else {
        image
    };
    let rgba = image.to_rgba8();
    let (w, h) = rgba.dimensions();
    Ok(egui::ColorImage::from_rgba_unmultiplied(
        [w as usize, h as usize],
        rgba.as_raw(),
    ))
}

type Loaded = (String, Option<egui::ColorImage>);

/// The background thread that finds and decodes icons, started on the first request.
pub struct IconLoader {
    requests: Option<Sender<String>>,
    results: Receiver<Loaded>,
    results_tx: Sender<Loaded>,
}

impl Default for IconLoader {
    fn default() -> Self {
        let (results_tx, results) = mpsc::channel();
        IconLoader {
            requests: None,
            results,
            results_tx,
        }
    }
}

impl IconLoader {
    /// Asks for an icon; `wake` is called when it is ready (or known to be missing).
    pub fn request(&mut self, icon: String, wake: impl Fn() + Send + 'static) {
        if self.requests.is_none() {
            let (tx, rx) = mpsc::channel::<String>();
            let results = self.results_tx.clone();
            let spawned = std::thread::Builder::new()
                .name("memmon-icons".into())
                .spawn(move || {
                    for icon in rx {
                        let image = load(&icon);
                        if results.send((icon, image)).is_err() {
                            return;
                        }
                        wake();
                    }
                });
            match spawned {
                Ok(_) => self.requests = Some(tx),
                Err(e) => {
                    // No thread, no icons: every app gets its letter.
                    log::warn!("cannot start the icon thread: {e}");
                    let _ = self.results_tx.send((icon, None));
                    return;
                }
            }
        }
        if let Some(tx) = &self.requests
            && tx.send(icon.clone()).is_err()
        {
            let _ = self.results_tx.send((icon, None));
        }
    }

    /// An icon the thread finished, without blocking.
    pub fn try_recv(&self) -> Option<Loaded> {
        self.results.try_recv().ok()
    }
}

enum Entry {
    /// Asked for, not back yet.
    Pending,
    /// No usable icon: draw the letter.
    Missing,
    /// Back from the thread, not yet a texture.
    Decoded(egui::ColorImage),
    Ready(egui::TextureHandle),
}

/// What to draw for an icon name now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Icon {
    Texture(egui::TextureId),
    /// Draw the letter (missing, or still loading).
    Letter,
    /// Draw the letter and ask for the icon (the first time the name is seen).
    Load,
}

/// The panel's icon textures, bounded by [`MAX_ICONS`].
#[derive(Default)]
pub struct IconCache {
    entries: HashMap<String, (Entry, u64)>,
    frame: u64,
}

impl IconCache {
    /// Call once per frame before [`IconCache::get`] (for least-recently-drawn eviction).
    pub fn begin_frame(&mut self) {
        self.frame += 1;
    }

    pub fn get(&mut self, ctx: &egui::Context, icon: &str) -> Icon {
        let frame = self.frame;
        let Some((entry, used)) = self.entries.get_mut(icon) else {
            self.evict_for_one();
            self.entries
                .insert(icon.to_owned(), (Entry::Pending, frame));
            return Icon::Load;
        };
        *used = frame;
        if let Entry::Decoded(image) = entry {
            let image = std::mem::take(image);
            let texture = ctx.load_texture(
                format!("app-icon:{icon}"),
                image,
                egui::TextureOptions::LINEAR,
            );
            *entry = Entry::Ready(texture);
        }
        match entry {
            Entry::Ready(texture) => Icon::Texture(texture.id()),
            Entry::Pending | Entry::Missing | Entry::Decoded(_) => Icon::Letter,
        }
    }

    /// What the loader thread sent.
    pub fn arrived(&mut self, icon: String, image: Option<egui::ColorImage>) {
        if let Some((entry, _)) = self.entries.get_mut(&icon) {
            *entry = image.map_or(Entry::Missing, Entry::Decoded);
        }
    }

    /// Whether a texture is ready for the icon (tests).
    pub fn is_ready(&self, icon: &str) -> bool {
        matches!(self.entries.get(icon), Some((Entry::Ready(_), _)))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn evict_for_one(&mut self) {
        if self.entries.len() < MAX_ICONS {
            return;
        }
        // Pending entries stay: their answer is on its way and would be asked for again.
        let oldest = self
            .entries
            .iter()
            .filter(|(_, (e, _))| !matches!(e, Entry::Pending))
            .min_by_key(|(_, (_, used))| *used)
            .map(|(k, _)| k.clone());
        if let Some(key) = oldest {
            self.entries.remove(&key);
        }
    }
}

/// The colour of an app's letter: stable per id, readable under white text.
pub fn letter_colour(id: &str) -> egui::Color32 {
    let hash = id.bytes().fold(2_166_136_261_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    });
    let hue = (hash % 360) as f32 / 360.0;
    egui::ecolor::Hsva::new(hue, 0.55, 0.62, 1.0).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(dir: &Path, name: &str, size: u32) -> PathBuf {
        let path = dir.join(name);
        let img = image::RgbaImage::from_pixel(size, size, image::Rgba([200, 30, 30, 255]));
        img.save_with_format(&path, image::ImageFormat::Png)
            .expect("write png");
        path
    }

    #[test]
    fn a_png_path_is_loaded_and_scaled_and_anything_else_is_a_letter() {
        let dir = std::env::temp_dir().join(format!("memmon-icons-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let big = png(&dir, "big.png", 128);
        let image = load(&big.to_string_lossy()).expect("decoded");
        assert_eq!(image.size, [32, 32], "scaled to fit 32 px");
        let small = png(&dir, "small.png", 16);
        assert_eq!(
            load(&small.to_string_lossy()).map(|i| i.size),
            Some([16, 16])
        );
        let svg = dir.join("only.svg");
        std::fs::write(&svg, "<svg/>").expect("svg");
        assert!(
            load(&svg.to_string_lossy()).is_none(),
            "SVG gets the letter"
        );
        let broken = dir.join("broken.png");
        std::fs::write(&broken, b"not a png").expect("write");
        assert!(load(&broken.to_string_lossy()).is_none());
        assert!(load("no-such-icon-name-memmon-test").is_none());
        assert!(load("../etc/passwd").is_none(), "names are not paths");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_cache_asks_once_and_stays_bounded() {
        let ctx = egui::Context::default();
        let mut cache = IconCache::default();
        cache.begin_frame();
        assert_eq!(cache.get(&ctx, "a"), Icon::Load);
        assert_eq!(cache.get(&ctx, "a"), Icon::Letter, "asked once");
        cache.arrived(
            "a".into(),
            Some(egui::ColorImage::filled([2, 2], egui::Color32::RED)),
        );
        assert!(matches!(cache.get(&ctx, "a"), Icon::Texture(_)));
        assert!(cache.is_ready("a"));
        for i in 0..MAX_ICONS * 2 {
            cache.begin_frame();
            let name = format!("icon-{i}");
            let _ = cache.get(&ctx, &name);
            cache.arrived(name, None);
        }
        assert!(cache.len() <= MAX_ICONS, "{}", cache.len());
    }

    #[test]
    fn letters_have_stable_colours() {
        assert_eq!(letter_colour("app:x"), letter_colour("app:x"));
        assert_ne!(letter_colour("app:x"), letter_colour("app:y"));
    }
}
