//! Names for return addresses, with blazesym: ELF symbols, DWARF file:line and inlined
//! functions (following `.gnu_debuglink` to /usr/lib/debug), demangled. Each address is looked up
//! once, in the exact file the process mapped, while the process is alive; the result is kept
//! so a report stays named after the process exits.
//!
//! Names are untrusted (anyone can name a function or a file): they are escaped like process
//! names before they reach a report.

use std::collections::HashMap;

use blazesym::symbolize::{
    CodeInfo, Input, Symbolized, Symbolizer,
    source::{Elf, Source},
};
use memmon_common::{callsites::Frame, text::escape_name};

use super::modules::LoadedModule;

/// Addresses whose names are kept (a session has at most `tally::MAX_STACKS` stacks of
/// `unwind::MAX_FRAMES`, but few distinct addresses in practice).
const MAX_NAMED: usize = 200_000;

/// Longest name or path kept (bytes, before escaping): names come from files anyone can write.
const MAX_NAME_BYTES: usize = 512;

/// The frames an address expands to: inlined calls first (innermost first), then the function.
type Named = Box<[Frame]>;

pub struct Symbols {
    symbolizer: Symbolizer,
    named: HashMap<u64, Named>,
}

impl Symbols {
    pub fn new() -> Symbols {
        Symbols {
            symbolizer: Symbolizer::builder()
                .enable_code_info(true)
                .enable_inlined_fns(true)
                .build(),
            named: HashMap::new(),
        }
    }

    /// Looks up every address in `addrs` not named yet.
    pub fn resolve(&mut self, addrs: impl IntoIterator<Item = u64>, modules: &[LoadedModule]) {
        let mut by_module: HashMap<usize, Vec<u64>> = HashMap::new();
        for addr in addrs {
            if self.named.contains_key(&addr) || self.named.len() >= MAX_NAMED {
                continue;
            }
            match modules.iter().position(|m| m.avma.contains(&addr)) {
                Some(i) => by_module.entry(i).or_default().push(addr),
                None => {
                    self.named.insert(addr, Box::new([bare(addr, None)]));
                }
            }
        }
        for (i, mut addrs) in by_module {
            let module = &modules[i];
            addrs.sort_unstable();
            addrs.dedup();
            let offsets: Vec<u64> = addrs.iter().map(|a| a.wrapping_sub(module.bias)).collect();
            // DWARF gives file:line and inlined calls but short names ("new"); the symbol table
            // gives the full, demangled name ("memmon_workload::Touched::new"): ask both.
            let lookup = |debug_syms: bool| {
                let mut elf = Elf::new(module.read_path.clone());
                elf.debug_syms = debug_syms;
                match self
                    .symbolizer
                    .symbolize(&Source::Elf(elf), Input::VirtOffset(&offsets))
                {
                    Ok(results) => results,
                    Err(e) => {
                        log::debug!("call sites: no symbols from {}: {e}", module.path);
                        Vec::new()
                    }
                }
            };
            let results = lookup(true);
            let full_names: Vec<Option<String>> = lookup(false)
                .into_iter()
                .map(|r| match r {
                    Symbolized::Sym(sym) => Some(sym.name.into_owned()),
                    Symbolized::Unknown(_) => None,
                })
                .collect();
            for (j, &addr) in addrs.iter().enumerate() {
                let frames = match results.get(j) {
                    Some(Symbolized::Sym(sym)) => {
                        // An inlined copy of the function itself (glibc's internal
                        // aliases) adds nothing.
                        let mut frames: Vec<Frame> = sym
                            .inlined
                            .iter()
                            .rev()
                            .filter(|f| f.name != sym.name)
                            .map(|f| named(addr, &f.name, f.code_info.as_ref(), &module.name))
                            .collect();
                        let name = full_names
                            .get(j)
                            .cloned()
                            .flatten()
                            .filter(|full| full.ends_with(sym.name.as_ref()))
                            .unwrap_or_else(|| sym.name.clone().into_owned());
                        frames.push(named(addr, &name, sym.code_info.as_deref(), &module.name));
                        frames.into_boxed_slice()
                    }
                    _ => Box::new([bare(addr, Some(&module.name))]),
                };
                self.named.insert(addr, frames);
            }
        }
    }

    /// The frames for `addr` (a bare address until it is resolved).
    pub fn frames(&self, addr: u64) -> Vec<Frame> {
        match self.named.get(&addr) {
            Some(frames) => frames.to_vec(),
            None => vec![bare(addr, None)],
        }
    }

    pub fn is_named(&self, addr: u64) -> bool {
        self.named.contains_key(&addr)
    }
}

/// Escaped, and cut to [`MAX_NAME_BYTES`] (marked with "…").
fn bounded(raw: &[u8]) -> String {
    if raw.len() <= MAX_NAME_BYTES {
        return escape_name(raw);
    }
    let mut text = escape_name(&raw[..MAX_NAME_BYTES]);
    text.push('…');
    text
}

fn named(addr: u64, name: &str, code: Option<&CodeInfo<'_>>, module: &str) -> Frame {
    let (file, line) = match code {
        Some(code) => {
            let path = code.to_path();
            (Some(bounded(path.to_string_lossy().as_bytes())), code.line)
        }
        None => (None, None),
    };
    Frame {
        addr,
        function: Some(bounded(name.as_bytes())),
        file,
        line,
        module: Some(module.to_owned()),
    }
}

fn bare(addr: u64, module: Option<&str>) -> Frame {
    Frame {
        addr,
        module: module.map(str::to_owned),
        ..Frame::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callsites::modules::{load_modules, read_maps};

    #[test]
    fn names_a_libc_function_of_this_process() {
        let pid = std::process::id();
        let modules = load_modules(pid, &read_maps(pid).unwrap());
        let mut symbols = Symbols::new();
        let addr = libc::malloc as *const () as usize as u64 + 1;
        symbols.resolve([addr], &modules);
        let frames = symbols.frames(addr);
        let last = frames.last().unwrap();
        assert!(
            last.function
                .as_deref()
                .is_some_and(|f| f.contains("malloc")),
            "{frames:?}"
        );
        assert!(
            last.module
                .as_deref()
                .is_some_and(|m| m.starts_with("libc.so"))
        );
    }
}
