//! A real window: the real `memmon` binary under Xvfb with the glow renderer, embedded mode
//! against the real /proc, exporting its own PNG. On CI (`CI=true`) a missing Xvfb is a failure.
mod common;

use std::process::{Child, Command, Stdio};

struct Xvfb(Child);

impl Drop for Xvfb {
    fn drop(&mut self) {
        // SIGTERM, so Xvfb removes its lock file and socket (SIGKILL leaves them behind).
        if let Ok(pid) = libc::pid_t::try_from(self.0.id()) {
            // SAFETY: kill takes a PID and a signal by value; the child is not reaped yet, so
            // the PID is still its own.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.0.wait();
    }
}

/// Starts Xvfb on a display it picks itself (`-displayfd`: the first free one, whatever stale
/// locks or other servers exist) and returns it once it accepts connections.
fn start_xvfb() -> Option<(Xvfb, String)> {
    let child = match Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            "1280x800x24",
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("Xvfb is needed for the window test and CI=true: {e}");
            }
            eprintln!("SKIPPED: no Xvfb ({e})");
            return None;
        }
    };
    let mut xvfb = Xvfb(child);
    // Xvfb writes the display number once it is ready (it exits, closing the pipe, if not).
    let mut number = String::new();
    let stdout = xvfb.0.stdout.take().expect("Xvfb's stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut number)
        .expect("reading Xvfb's display number");
    let number = number.trim();
    assert!(
        !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()),
        "Xvfb did not start (it said {number:?})"
    );
    Some((xvfb, format!(":{number}")))
}

/// Runs the real `memmon --source embedded --screenshot PATH` on `display`, with a private home.
fn screenshot(display: &str, label: &str, png: &std::path::Path) -> std::process::Output {
    screenshot_with(display, label, png, &[])
}

fn screenshot_with(
    display: &str,
    label: &str,
    png: &std::path::Path,
    args: &[&str],
) -> std::process::Output {
    let dir = std::env::temp_dir().join(format!("memmon-window-{label}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_memmon"))
        .args(["--source", "embedded"])
        .args(args)
        .arg("--screenshot")
        .arg(png)
        .env("DISPLAY", display)
        .env_remove("WAYLAND_DISPLAY")
        .env("XDG_RUNTIME_DIR", &dir)
        .env("HOME", &dir)
        .output()
        .expect("run memmon");
    let _ = std::fs::remove_dir_all(&dir);
    out
}

#[test]
fn the_real_window_exports_a_png_of_its_size() {
    let Some((_xvfb, display)) = start_xvfb() else {
        return;
    };
    let png = std::env::temp_dir().join(format!("memmon-window-{}.png", std::process::id()));
    let out = screenshot(&display, "ok", &png);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "memmon failed: {out:?}");
    assert!(stdout.contains("mode: Embedded"), "{stdout}");
    common::assert_window_png(&png);
    let _ = std::fs::remove_file(&png);
}

#[test]
fn an_unwritable_export_folder_gives_a_message_not_a_crash() {
    let Some((_xvfb, display)) = start_xvfb() else {
        return;
    };
    let out = screenshot(
        &display,
        "ro",
        std::path::Path::new("/nonexistent-folder/window.png"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr.contains("Could not save /nonexistent-folder/window.png"),
        "{stderr}"
    );
}

/// Relative luminance (0 black … 1 white) of a pixel.
fn luminance(p: &image::Rgba<u8>) -> f64 {
    let [r, g, b, _] = p.0.map(f64::from);
    (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255.0
}

#[test]
fn light_and_dark_themes_both_render_readably() {
    let Some((_xvfb, display)) = start_xvfb() else {
        return;
    };
    for (theme, light) in [("light", true), ("dark", false)] {
        let png =
            std::env::temp_dir().join(format!("memmon-theme-{theme}-{}.png", std::process::id()));
        let out = screenshot_with(&display, theme, &png, &["--theme", theme]);
        assert!(
            out.status.success(),
            "memmon --theme {theme} failed: {out:?}"
        );
        let image = image::open(&png).expect("a readable PNG").to_rgba8();
        let _ = std::fs::remove_file(&png);
        let mut levels: Vec<f64> = image.pixels().map(luminance).collect();
        levels.sort_by(f64::total_cmp);
        // The background is the most common level: the median of a mostly empty window.
        let background = levels[levels.len() / 2];
        if light {
            assert!(
                background > 0.8,
                "{theme}: background luminance {background:.2}"
            );
        } else {
            assert!(
                background < 0.2,
                "{theme}: background luminance {background:.2}"
            );
        }
        // Text: enough pixels far from the background (readable contrast).
        let contrasting = levels
            .iter()
            .filter(|&&l| (l - background).abs() > 0.45)
            .count();
        let share = contrasting as f64 / levels.len() as f64;
        assert!(
            share > 0.01,
            "{theme}: only {:.2} % of the pixels stand out from the background",
            share * 100.0
        );
    }
}
