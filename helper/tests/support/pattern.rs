//! A `memmon-workload pattern …` child for the tests (killed and reaped on drop).

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_memmon-workload");

pub struct Pattern {
    pub child: Child,
    pub stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Pattern {
    pub fn spawn(args: &[&str]) -> Pattern {
        let mut child = Command::new(WORKLOAD)
            .arg("pattern")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn memmon-workload");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Pattern {
            child,
            stdin,
            stdout,
        }
    }

    pub fn expect(&mut self, want: &str) {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read workload");
        assert_eq!(line.trim(), want, "workload said {line:?}");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Pattern {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
