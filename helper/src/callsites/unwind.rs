//! Turns a record's registers and stack copy into return addresses, with framehop: DWARF CFI
//! from `.eh_frame` (or `.debug_frame`), falling back to frame pointers where a module has no
//! unwind information. Debian's libc and most packaged programs have no frame pointers, so a
//! frame-pointer walk would stop in libc.

use std::collections::HashSet;

use framehop::{
    FrameAddress, Unwinder as _,
    x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64},
};

use super::modules::{LoadedModule, SectionBytes};

/// Frames kept per stack, innermost first.
pub const MAX_FRAMES: usize = 128;

pub struct StackUnwinder {
    unwinder: UnwinderX86_64<SectionBytes>,
    cache: CacheX86_64,
    /// Start addresses of the modules added (the unwinder's keys).
    added: HashSet<u64>,
}

/// A stack as addresses to look up (innermost first), and whether it is complete.
pub struct Unwound {
    pub frames: Vec<u64>,
    /// The walk stopped before the stack's end (copy exhausted or unwinding failed).
    pub truncated: bool,
}

impl StackUnwinder {
    pub fn new() -> StackUnwinder {
        StackUnwinder {
            unwinder: UnwinderX86_64::new(),
            cache: CacheX86_64::new(),
            added: HashSet::new(),
        }
    }

    /// Adds the modules not added yet (a process that loads a library later gets it on the
    /// next refresh).
    pub fn add_modules(&mut self, modules: &[LoadedModule]) {
        for m in modules {
            if self.added.contains(&m.avma.start) {
                continue;
            }
            if let Some(module) = m.unwind_module() {
                self.unwinder.add_module(module);
                self.added.insert(m.avma.start);
            }
        }
    }

    /// Unwinds from `ip`/`sp`/`bp` over `stack`, the bytes copied from `sp` up. `ip_is_return`
    /// says `ip` is a return address (a uretprobe fires just after the call returned), so its
    /// lookup address is `ip - 1` like every caller frame's.
    pub fn unwind(
        &mut self,
        ip: u64,
        sp: u64,
        bp: u64,
        stack: &[u8],
        ip_is_return: bool,
    ) -> Unwound {
        let mut read_stack = |addr: u64| -> Result<u64, ()> {
            let off = usize::try_from(addr.checked_sub(sp).ok_or(())?).map_err(|_| ())?;
            let bytes = stack.get(off..off.checked_add(8).ok_or(())?).ok_or(())?;
            Ok(u64::from_le_bytes(bytes.try_into().map_err(|_| ())?))
        };
        let mut frames = Vec::with_capacity(32);
        let mut iter = self.unwinder.iter_frames(
            ip,
            UnwindRegsX86_64::new(ip, sp, bp),
            &mut self.cache,
            &mut read_stack,
        );
        let truncated = loop {
            match iter.next() {
                Ok(Some(frame)) => {
                    let addr = match frame {
                        FrameAddress::InstructionPointer(a) if ip_is_return => a.saturating_sub(1),
                        f => f.address_for_lookup(),
                    };
                    frames.push(addr);
                    if frames.len() >= MAX_FRAMES {
                        break true;
                    }
                }
                Ok(None) => break false,
                Err(_) => break true,
            }
        };
        Unwound { frames, truncated }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callsites::modules::{load_modules, read_maps};

    /// Unwinds this very thread: copies its own stack and registers (as the kernel program
    /// does for the watched process) and expects to find this test function's callers.
    #[test]
    #[inline(never)]
    fn unwinds_its_own_stack_through_eh_frame() {
        let pid = std::process::id();
        let modules = load_modules(pid, &read_maps(pid).unwrap());
        let mut unwinder = StackUnwinder::new();
        unwinder.add_modules(&modules);
        let (ip, sp, bp, stack) = capture();
        let unwound = unwinder.unwind(ip, sp, bp, &stack, false);
        assert!(unwound.frames.len() >= 3, "{:x?}", unwound.frames);
        // Every frame is inside a module of this process.
        for addr in &unwound.frames {
            assert!(
                modules.iter().any(|m| m.avma.contains(addr)),
                "{addr:#x} outside every module"
            );
        }
    }

    /// (ip, sp, bp, 64 KiB of stack from sp), taken inside this function.
    #[inline(never)]
    fn capture() -> (u64, u64, u64, Vec<u8>) {
        let (ip, sp, bp): (u64, u64, u64);
        // SAFETY: reads three registers into locals; no memory is touched.
        unsafe {
            std::arch::asm!(
                "lea {ip}, [rip]",
                "mov {sp}, rsp",
                "mov {bp}, rbp",
                ip = out(reg) ip,
                sp = out(reg) sp,
                bp = out(reg) bp,
            );
        }
        let mut stack = vec![0u8; 64 * 1024];
        // The thread's stack above sp is mapped (test threads have 2 MiB stacks); copy it
        // with process_vm_readv-like safety by reading our own memory through /proc.
        use std::io::{Read as _, Seek as _, SeekFrom};
        let mut mem = std::fs::File::open("/proc/self/mem").unwrap();
        mem.seek(SeekFrom::Start(sp)).unwrap();
        let n = mem.read(&mut stack).unwrap();
        stack.truncate(n);
        (ip, sp, bp, stack)
    }
}
