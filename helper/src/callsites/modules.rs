//! The binaries a process has mapped: read from `/proc/PID/maps` and the ELF files themselves
//! (through `/proc/PID/map_files`, or the process's own root, so binaries in another mount
//! namespace, deleted or replaced ones are the ones it really runs). Every file is untrusted:
//! a malformed ELF only loses that module's unwinding, symbols or probes.

use std::{
    collections::HashMap,
    fs::File,
    ops::{Deref, Range},
    path::{Path, PathBuf},
    sync::Arc,
};

use memmap2::Mmap;
use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol};

/// Bytes of `/proc/PID/maps` read at most (a process has at most `vm.max_map_count`, 65,530 by
/// default, lines of ~100 bytes).
const MAX_MAPS_BYTES: u64 = 16 << 20;
/// ELF files larger than this are left out (no unwind tables, no names).
const MAX_ELF_BYTES: u64 = 4 << 30;
/// Binaries loaded per process at most (a real process maps a few hundred; a hostile one could
/// map tens of thousands of files to make every refresh slow).
const MAX_MODULES: usize = 4_096;

/// One line of `/proc/PID/maps`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub executable: bool,
    pub offset: u64,
    /// The file's device (as `stat` encodes it; 0 when the line could not say).
    pub dev: u64,
    pub inode: u64,
    /// The path as the process sees it ("[heap]", "[stack]", or a file), when there is one.
    pub path: Option<String>,
}

/// Parses `/proc/PID/maps` text; malformed lines are skipped.
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines().filter_map(parse_maps_line).collect()
}

fn parse_maps_line(line: &str) -> Option<Mapping> {
    let mut fields = line.splitn(6, ' ');
    let (start, end) = fields.next()?.split_once('-')?;
    let perms = fields.next()?;
    let offset = fields.next()?;
    let dev = fields.next()?;
    let inode = fields.next()?;
    let path = fields.next().map(str::trim_start).filter(|p| !p.is_empty());
    Some(Mapping {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        executable: perms.as_bytes().get(2) == Some(&b'x'),
        offset: u64::from_str_radix(offset, 16).ok()?,
        dev: parse_dev(dev).unwrap_or(0),
        inode: inode.parse().ok()?,
        path: path.map(str::to_owned),
    })
}

/// "08:01" (hex major:minor) → the `st_dev` encoding (glibc's makedev).
fn parse_dev(text: &str) -> Option<u64> {
    let (major, minor) = text.split_once(':')?;
    let (major, minor) = (
        u64::from_str_radix(major, 16).ok()?,
        u64::from_str_radix(minor, 16).ok()?,
    );
    Some(
        ((major & 0xffff_f000) << 32)
            | ((major & 0xfff) << 8)
            | ((minor & 0xffff_ff00) << 12)
            | (minor & 0xff),
    )
}

pub fn read_maps(pid: u32) -> std::io::Result<Vec<Mapping>> {
    use std::io::Read as _;
    let mut text = String::new();
    File::open(format!("/proc/{pid}/maps"))?
        .take(MAX_MAPS_BYTES)
        .read_to_string(&mut text)?;
    Ok(parse_maps(&text))
}

/// The end of the process's `[heap]` (its program break, page-rounded), if it has one.
pub fn heap_end(maps: &[Mapping]) -> Option<u64> {
    maps.iter()
        .find(|m| m.path.as_deref() == Some("[heap]"))
        .map(|m| m.end)
}

/// A mapped ELF file: its bytes (memory-mapped, shared between the unwinder's sections).
#[derive(Clone)]
pub struct ElfBytes(Arc<Mmap>);

impl Deref for ElfBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// A section of an [`ElfBytes`], as framehop wants it (anything that derefs to bytes).
#[derive(Clone)]
pub struct SectionBytes {
    file: ElfBytes,
    range: Range<usize>,
}

impl Deref for SectionBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.file[self.range.clone()]
    }
}

/// One binary mapped by the process, with what unwinding needs.
pub struct LoadedModule {
    /// The file name (what reports show).
    pub name: String,
    /// The path as the process sees it.
    pub path: String,
    /// The addresses its mappings cover.
    pub avma: Range<u64>,
    /// Where the ELF's virtual address 0 is in the process (the load bias).
    pub bias: u64,
    pub file: ElfBytes,
    /// The path the helper opened it by (to attach uprobes to the same inode).
    pub opened: PathBuf,
    /// The path the symboliser reads: `opened`, or the private copy of an untrusted file.
    pub read_path: PathBuf,
    /// Keeps the private copy's descriptor (and so `read_path`) alive.
    _copy: Option<File>,
}

/// Opens `path` only if it is a regular file with the mapping's device and inode, checked
/// before opening (so a FIFO or a device, which the process may have put there, is never
/// opened: opening a FIFO blocks, a device may act) and again on the open file, without
/// blocking and without giving it a controlling terminal.
fn open_checked(path: &Path, m: &Mapping) -> Option<File> {
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
    let same = |md: &std::fs::Metadata| {
        md.file_type().is_file() && md.ino() == m.inode && (m.dev == 0 || md.dev() == m.dev)
    };
    if !same(&std::fs::metadata(path).ok()?) {
        return None;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .ok()?;
    same(&file.metadata().ok()?).then_some(file)
}

/// Opens the file behind an executable mapping: its own path (when the file there is the
/// mapped one: no access to the process is needed, whereas /proc's magic links below pass the
/// kernel's ptrace check only with CAP_SYS_PTRACE, map_files only with CAP_SYS_ADMIN), else
/// `/proc/PID/map_files/START-END` (even deleted or in another namespace), else the path under
/// the process's root (`/proc/PID/root/PATH`, its mount namespace).
fn open_mapped(pid: u32, m: &Mapping, path: &str) -> Option<(File, PathBuf)> {
    let candidates = [
        PathBuf::from(path),
        PathBuf::from(format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end)),
        PathBuf::from(format!("/proc/{pid}/root{path}")),
    ];
    candidates
        .into_iter()
        .find_map(|p| open_checked(&p, m).map(|f| (f, p)))
}

/// Whether someone other than root may change the file (it is theirs, or group/other may
/// write it): then it is read from a private copy, never mapped in place, because truncating
/// a mapped file makes reads past its new end kill the reader with SIGBUS.
fn untrusted(file: &File) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    file.metadata()
        .map_or(true, |md| md.uid() != 0 || md.mode() & 0o022 != 0)
}

/// A private, sealed-by-ownership copy of `file` in a memfd (nobody else has its descriptor),
/// with its debug-link sections renamed so the symboliser never follows a path the file names.
/// Returns the copy and the path the symboliser reads it by.
fn private_copy(file: &File, len: u64) -> Option<(File, PathBuf)> {
    use std::{io::Read as _, os::fd::FromRawFd as _};
    // SAFETY: memfd_create with a NUL-terminated name and a valid flag.
    let fd = unsafe { libc::memfd_create(c"memmon-module".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` is a new descriptor this function owns from here on.
    let mut copy = unsafe { File::from_raw_fd(fd) };
    std::io::copy(&mut file.take(len), &mut copy).ok()?;
    let bytes = map_file(&copy)?;
    for offset in debug_link_name_offsets(&bytes) {
        use std::os::unix::fs::FileExt as _;
        copy.write_at(b"X", offset).ok()?;
    }
    let path = PathBuf::from(format!("/proc/self/fd/{fd}"));
    Some((copy, path))
}

/// File offsets of the names `.gnu_debuglink` and `.gnu_debugaltlink` in the section-name
/// table (renaming them hides the links).
fn debug_link_name_offsets(bytes: &[u8]) -> Vec<u64> {
    use object::read::elf::{ElfFile64, FileHeader as _, SectionHeader as _};
    let Ok(elf) = ElfFile64::<object::Endianness>::parse(bytes) else {
        return Vec::new();
    };
    let endian = elf.endian();
    let table = elf.elf_section_table();
    let Ok(index) = elf.elf_header().shstrndx(endian, bytes) else {
        return Vec::new();
    };
    let Ok(strings) = table.section(object::SectionIndex(index as usize)) else {
        return Vec::new();
    };
    let base = strings.sh_offset(endian);
    table
        .iter()
        .filter(|s| {
            matches!(
                table.section_name(endian, s),
                Ok(b".gnu_debuglink" | b".gnu_debugaltlink")
            )
        })
        .filter_map(|s| base.checked_add(u64::from(s.sh_name(endian))))
        .collect()
}

fn map_file(file: &File) -> Option<ElfBytes> {
    let len = file.metadata().ok()?.len();
    if len == 0 || len > MAX_ELF_BYTES {
        return None;
    }
    // SAFETY: a read-only private mapping of a file only root can change (`untrusted` sends
    // every other file through a private copy first), so it is not truncated under us.
    let map = unsafe { Mmap::map(file) }.ok()?;
    Some(ElfBytes(Arc::new(map)))
}

/// Every executable file mapping of the process, loaded. Files that cannot be opened or parsed
/// are left out (their frames stay unnamed and unwinding falls back to frame pointers there).
pub fn load_modules(pid: u32, maps: &[Mapping]) -> Vec<LoadedModule> {
    // All mappings of one file (by inode and path), in address order.
    let mut by_file: HashMap<(u64, &str), Vec<&Mapping>> = HashMap::new();
    for m in maps {
        if let Some(path) = m
            .path
            .as_deref()
            .filter(|p| p.starts_with('/') && m.inode != 0)
        {
            by_file.entry((m.inode, path)).or_default().push(m);
        }
    }
    let mut modules = Vec::new();
    // One module per run of adjacent mappings of a file that holds executable code (a file
    // mapped twice is two modules; a module never spans a library loaded between its parts).
    let executable = by_file
        .into_iter()
        .flat_map(|((_, path), ms)| adjacent_runs(ms).into_iter().map(move |run| (path, run)))
        .filter_map(|(path, run)| Some((path, *run.iter().find(|m| m.executable)?, run)))
        .take(MAX_MODULES);
    for (path, exec, ms) in executable {
        let Some(module) = load_module(pid, path, exec, &ms) else {
            log::debug!("call sites: cannot load {path:?} of PID {pid}");
            continue;
        };
        modules.push(module);
    }
    modules.sort_by_key(|m| m.avma.start);
    modules
}

/// Splits one file's mappings (in address order) into runs of adjacent ones.
fn adjacent_runs(mut ms: Vec<&Mapping>) -> Vec<Vec<&Mapping>> {
    ms.sort_by_key(|m| m.start);
    let mut runs: Vec<Vec<&Mapping>> = Vec::new();
    for m in ms {
        match runs.last_mut() {
            Some(run) if run.last().is_some_and(|prev| prev.end == m.start) => run.push(m),
            _ => runs.push(vec![m]),
        }
    }
    runs
}

fn load_module(pid: u32, path: &str, exec: &Mapping, all: &[&Mapping]) -> Option<LoadedModule> {
    let (file, opened) = open_mapped(pid, exec, path)?;
    let (bytes, copy, read_path) = if untrusted(&file) {
        let len = file.metadata().ok()?.len().min(MAX_ELF_BYTES);
        let (copy, read_path) = private_copy(&file, len)?;
        (map_file(&copy)?, Some(copy), read_path)
    } else {
        (map_file(&file)?, None, opened.clone())
    };
    let elf = object::File::parse(&*bytes).ok()?;
    // The load bias: the executable mapping maps file offset `exec.offset` (page-aligned) at
    // `exec.start`. Its segment is the executable one whose page-aligned file range holds that
    // offset; linkers such as lld start it mid-page (p_offset 0x5a4c0, p_vaddr 0x5b4c0), so the
    // mapping begins before p_offset and the bias is start + (p_offset - offset) - p_vaddr.
    let page_down = |o: u64| o & !0xfff;
    let segment = elf.segments().find(|s| {
        let (off, size) = s.file_range();
        is_executable(s)
            && page_down(off) <= exec.offset
            && off.checked_add(size).is_some_and(|end| exec.offset < end)
    })?;
    let (seg_off, _) = segment.file_range();
    let bias = exec
        .start
        .wrapping_add(seg_off.wrapping_sub(exec.offset))
        .wrapping_sub(segment.address());
    let start = all.iter().map(|m| m.start).min()?;
    let end = all.iter().map(|m| m.end).max()?;
    let name = Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_owned());
    Some(LoadedModule {
        name: memmon_common::text::escape_name(name.as_bytes()),
        path: path.to_owned(),
        avma: start..end,
        bias,
        file: bytes,
        opened,
        read_path,
        _copy: copy,
    })
}

impl LoadedModule {
    /// framehop's view of the module: its unwind sections, as slices of the mapped file.
    pub fn unwind_module(&self) -> Option<framehop::Module<SectionBytes>> {
        let elf = object::File::parse(&*self.file).ok()?;
        let section = |name: &str| {
            let s = elf.section_by_name(name)?;
            let svma = s.address()..s.address().checked_add(s.size())?;
            let data = s.file_range().and_then(|(off, size)| {
                let range =
                    usize::try_from(off).ok()?..usize::try_from(off.checked_add(size)?).ok()?;
                (range.start <= range.end && range.end <= self.file.len()).then(|| SectionBytes {
                    file: self.file.clone(),
                    range,
                })
            });
            Some((svma, data))
        };
        let (text_svma, text) = section(".text").unzip();
        let (eh_frame_svma, eh_frame) = section(".eh_frame").unzip();
        let (eh_frame_hdr_svma, eh_frame_hdr) = section(".eh_frame_hdr").unzip();
        let (got_svma, _) = section(".got").unzip();
        let debug_frame = section(".debug_frame").and_then(|(_, d)| d);
        let info = framehop::ExplicitModuleSectionInfo {
            base_svma: 0,
            text_svma,
            text: text.flatten(),
            got_svma,
            eh_frame_svma,
            eh_frame: eh_frame.flatten(),
            eh_frame_hdr_svma,
            eh_frame_hdr: eh_frame_hdr.flatten(),
            debug_frame,
            stubs_svma: None,
            stub_helper_svma: None,
            unwind_info: None,
            text_segment_svma: None,
            text_segment: None,
        };
        Some(framehop::Module::new(
            self.name.clone(),
            self.avma.clone(),
            self.bias,
            info,
        ))
    }

    /// File offsets of the defined function symbols among `names` (dynamic symbols first, then
    /// the full symbol table), for uprobes.
    pub fn function_offsets(&self, names: &[&str]) -> Vec<(String, u64)> {
        let Ok(elf) = object::File::parse(&*self.file) else {
            return Vec::new();
        };
        let mut found: Vec<(String, u64)> = Vec::new();
        for sym in elf.dynamic_symbols().chain(elf.symbols()) {
            if !sym.is_definition() || sym.kind() != object::SymbolKind::Text || sym.address() == 0
            {
                continue;
            }
            let Ok(name) = sym.name() else { continue };
            // Versioned names from the full table ("malloc@@GLIBC_2.2.5") count too.
            let base = name.split('@').next().unwrap_or(name);
            if !names.contains(&base) || found.iter().any(|(n, _)| n == base) {
                continue;
            }
            if let Some(offset) = file_offset(&elf, sym.address()) {
                found.push((base.to_owned(), offset));
            }
        }
        found
    }
}

fn is_executable(segment: &object::Segment<'_, '_>) -> bool {
    matches!(segment.flags(), object::SegmentFlags::Elf { p_flags } if p_flags & object::elf::PF_X != 0)
}

/// The file offset of a virtual address, through the segment that loads it.
fn file_offset(elf: &object::File<'_>, vaddr: u64) -> Option<u64> {
    elf.segments().find_map(|s| {
        let (off, size) = s.file_range();
        let end = s.address().checked_add(size)?;
        if s.address() <= vaddr && vaddr < end {
            (vaddr - s.address()).checked_add(off)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines_parse_with_and_without_paths() {
        let text = "\
55d0c0a00000-55d0c0a01000 r--p 00000000 08:01 131 /usr/bin/leaker with space
55d0c0a01000-55d0c0a02000 r-xp 00001000 08:01 131 /usr/bin/leaker with space
55d0c1000000-55d0c1021000 rw-p 00000000 00:00 0                          [heap]
7f0000000000-7f0000001000 rw-p 00000000 00:00 0
garbage line
";
        let maps = parse_maps(text);
        assert_eq!(maps.len(), 4);
        assert_eq!(maps[1].path.as_deref(), Some("/usr/bin/leaker with space"));
        assert!(maps[1].executable && !maps[0].executable);
        assert_eq!(maps[1].offset, 0x1000);
        assert_eq!(maps[1].dev, libc::makedev(8, 1));
        assert_eq!(maps[3].path, None);
        assert_eq!(heap_end(&maps), Some(0x55d0c1021000));
    }

    #[test]
    fn a_file_others_may_change_is_read_from_a_private_copy_without_its_debug_link() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("memmon-modules-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ls");
        std::fs::copy("/bin/ls", &path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let file = File::open(&path).unwrap();
        let original = map_file(&file).unwrap();
        assert!(untrusted(&file), "group/other-writable");
        assert!(
            !debug_link_name_offsets(&original).is_empty(),
            "ls has a debug link"
        );
        let (copy, read_path) = private_copy(&file, original.len() as u64).unwrap();
        let copied = map_file(&copy).unwrap();
        assert_eq!(copied.len(), original.len());
        assert!(
            debug_link_name_offsets(&copied).is_empty(),
            "the link is hidden"
        );
        assert!(object::File::parse(&*copied).is_ok(), "still a valid ELF");
        // Truncating the original cannot touch the copy.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        assert!(copied.iter().any(|&b| b != 0));
        assert!(read_path.starts_with("/proc/self/fd/"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_regular_files_with_the_mapped_inode_are_opened() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = std::env::temp_dir().join(format!("memmon-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let ino = std::fs::metadata(&fifo).unwrap().ino();
        let m = Mapping {
            start: 0,
            end: 0x1000,
            executable: true,
            offset: 0,
            dev: 0,
            inode: ino,
            path: None,
        };
        // Opening a FIFO for reading would block this test forever.
        assert!(open_checked(&fifo, &m).is_none());
        let ls = Path::new("/bin/ls");
        assert!(open_checked(ls, &m).is_none(), "another inode");
        let real = Mapping {
            inode: std::fs::metadata(ls).unwrap().ino(),
            ..m
        };
        assert!(open_checked(ls, &real).is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn own_libc_loads_with_its_allocator_and_unwind_sections() {
        let pid = std::process::id();
        let maps = read_maps(pid).unwrap();
        let modules = load_modules(pid, &maps);
        let libc = modules
            .iter()
            .find(|m| m.name.starts_with("libc.so"))
            .expect("this test binary maps libc");
        let offsets = libc.function_offsets(&["malloc", "free", "no_such_function"]);
        assert_eq!(offsets.len(), 2, "{offsets:?}");
        // The bias maps malloc's address in this process to its file offset's symbol.
        let malloc_addr = libc::malloc as *const () as usize as u64;
        let (_, malloc_off) = offsets.iter().find(|(n, _)| n == "malloc").unwrap();
        assert!(libc.avma.contains(&malloc_addr));
        assert!(*malloc_off > 0);
        assert!(libc.unwind_module().is_some());
    }
}
