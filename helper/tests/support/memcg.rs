//! A memory-limited cgroup for OOM tests (shared by the kernel and exporter tests).

/// A memory cgroup with a hard limit (v1 `memory.limit_in_bytes`, or v2 `memory.max`), removed
/// on drop.
pub struct MemCgroup {
    dir: std::path::PathBuf,
}

impl MemCgroup {
    pub fn create(limit_bytes: u64) -> MemCgroup {
        let name = format!("memmon-test-oom-{}", std::process::id());
        let v1 = std::path::Path::new("/sys/fs/cgroup/memory");
        let (dir, files): (_, &[(&str, String)]) =
            if v1.join("memory.limit_in_bytes").exists() || v1.join("cgroup.procs").exists() {
                (
                    v1.join(&name),
                    &[("memory.limit_in_bytes", limit_bytes.to_string())],
                )
            } else {
                let root = std::path::Path::new("/sys/fs/cgroup");
                let controllers =
                    std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
                assert!(
                    controllers.split_whitespace().any(|c| c == "memory"),
                    "no memory cgroup controller (v1 or v2) on this machine"
                );
                let _ = std::fs::write(root.join("cgroup.subtree_control"), "+memory");
                (
                    root.join(&name),
                    &[
                        ("memory.max", limit_bytes.to_string()),
                        ("memory.swap.max", "0".to_owned()),
                    ][..],
                )
            };
        let _ = std::fs::remove_dir(&dir);
        std::fs::create_dir(&dir).expect("create the test cgroup");
        for (file, value) in files {
            std::fs::write(dir.join(file), value).expect(file);
        }
        // v1 with swap accounting: the memory+swap limit too, or the hog would swap instead.
        let memsw = dir.join("memory.memsw.limit_in_bytes");
        if memsw.exists() {
            std::fs::write(&memsw, limit_bytes.to_string()).expect("memsw limit");
        }
        MemCgroup { dir }
    }

    pub fn add(&self, pid: u32) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string()).expect("join cgroup");
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}
