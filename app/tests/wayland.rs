//! A real window on Wayland: the real `memmon` binary under weston's headless backend (pixman
//! renderer), embedded mode against the real /proc, exporting its own PNG. The app gets no X11
//! display (DISPLAY is removed), so the window can only be a Wayland one; its GL context comes
//! from Mesa's EGL on Wayland (llvmpipe, buffers shared through wl_shm). On CI (`CI=true`) a
//! missing weston is a failure.
mod common;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const SOCKET: &str = "wayland-memmon-test";

/// weston and its private runtime directory (0700, as Wayland clients and weston require).
struct Weston {
    child: Child,
    runtime: PathBuf,
    log: PathBuf,
}

impl Weston {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Weston {
    fn drop(&mut self) {
        // SIGTERM lets weston stop its shell clients (weston-desktop-shell, weston-keyboard).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.runtime);
    }
}

fn start_weston(label: &str) -> Option<Weston> {
    use std::os::unix::fs::PermissionsExt;
    let runtime =
        std::env::temp_dir().join(format!("memmon-wayland-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&runtime);
    std::fs::create_dir_all(&runtime).expect("runtime dir");
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700))
        .expect("runtime dir 0700");
    let log = runtime.join("weston.log");
    // An output larger than the window, so the compositor does not shrink it to fit.
    let child = match Command::new("weston")
        .args([
            "--backend=headless-backend.so",
            "--use-pixman",
            "--width=1600",
            "--height=1000",
            "--no-config",
            "--idle-time=0",
        ])
        .arg(format!("--socket={SOCKET}"))
        .arg(format!("--log={}", log.display()))
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("HOME", &runtime)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("WAYLAND_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&runtime);
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("weston is needed for the Wayland window test and CI=true: {e}");
            }
            eprintln!("SKIPPED: no weston ({e})");
            return None;
        }
    };
    let mut weston = Weston {
        child,
        runtime,
        log,
    };
    let socket = weston.runtime.join(SOCKET);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        if let Ok(Some(status)) = weston.child.try_wait() {
            panic!(
                "weston exited ({status}) before listening:\n{}",
                weston.log()
            );
        }
        assert!(
            Instant::now() < deadline,
            "weston did not listen on {}:\n{}",
            socket.display(),
            weston.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(weston)
}

/// Runs the real `memmon --source embedded --screenshot PATH` as a Wayland client of `weston`,
/// with a private home and no X11 display, logging eframe's choice of window and GL context.
fn screenshot(weston: &Weston, png: &Path) -> std::process::Output {
    let home = weston.runtime.join("home");
    std::fs::create_dir_all(&home).expect("home");
    Command::new(env!("CARGO_BIN_EXE_memmon"))
        .args(["--source", "embedded", "--screenshot"])
        .arg(png)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_SOCKET")
        .env("WAYLAND_DISPLAY", SOCKET)
        .env("XDG_RUNTIME_DIR", &weston.runtime)
        .env("HOME", &home)
        .env("RUST_LOG", "eframe=debug")
        .output()
        .expect("run memmon")
}

#[test]
fn the_real_window_on_wayland_exports_a_png_of_its_size() {
    let Some(weston) = start_weston("ok") else {
        return;
    };
    let png = weston.runtime.join("window.png");
    let out = screenshot(&weston, &png);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "memmon failed on Wayland: {out:?}\nweston:\n{}",
        weston.log()
    );
    assert!(stdout.contains("mode: Embedded"), "{stdout}");
    // DISPLAY was removed, so X11 was impossible; eframe also says which window it drew into.
    assert!(
        stderr.contains("raw window handle: Some(Wayland("),
        "no Wayland window handle in eframe's log:\n{stderr}"
    );
    assert!(
        stderr.contains("Creating a gl_surface"),
        "no GL surface:\n{stderr}"
    );
    common::assert_window_png(&png);
}
