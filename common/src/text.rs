//! Text that comes from outside memmon's control.
//!
//! A process name (`comm`, at most 15 bytes) is chosen by whoever starts the process, with
//! `prctl(PR_SET_NAME)` or by naming the executable: it can hold terminal escape sequences,
//! bidirectional overrides that make text read differently than it is, or bytes that are not
//! UTF-8. memmon escapes it once, where it is collected, so every consumer (the CLI table, CSV,
//! JSON, the GUI, the D-Bus replies) sees the same harmless text.

/// A process name as memmon shows it everywhere: `raw` (the bytes the kernel gives) with
///
/// - every byte of a control or invisible-direction character written as `\xHH` (two lower-case
///   hex digits per byte of its UTF-8 encoding): C0 controls and DEL (`0x00`–`0x1f`, `0x7f`),
///   C1 controls (U+0080–U+009F), the bidirectional marks, embeddings, overrides and isolates
///   (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069) and the line and paragraph
///   separators (U+2028, U+2029);
/// - every byte that is not part of valid UTF-8 written as `\xHH`;
/// - a backslash written as `\\`, so the escaping cannot be forged and is reversible;
/// - everything else, including other non-ASCII letters, kept as it is.
///
/// So `"\x1b[31mevil"` (ESC and then text) becomes the ten visible characters `\x1b[31mevil`.
/// (`ps` replaces such bytes with `?`; escaping keeps names that differ only there apart.)
pub fn escape_name(raw: &[u8]) -> String {
    if raw.iter().all(|&b| (0x20..0x7f).contains(&b) && b != b'\\') {
        // The common case: printable ASCII. Every byte is valid UTF-8 on its own.
        return raw.iter().map(|&b| char::from(b)).collect();
    }
    let mut out = String::with_capacity(raw.len() + 8);
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else if needs_escape(c) {
                let mut buf = [0; 4];
                for &b in c.encode_utf8(&mut buf).as_bytes() {
                    push_hex(&mut out, b);
                }
            } else {
                out.push(c);
            }
        }
        for &b in chunk.invalid() {
            push_hex(&mut out, b);
        }
    }
    out
}

fn needs_escape(c: char) -> bool {
    c.is_control() // C0, DEL and C1: exactly Unicode's Cc category
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

fn push_hex(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\x");
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0xf)]));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nothing a terminal or a bidi-aware renderer would act on.
    fn inert(s: &str) -> bool {
        !s.chars().any(needs_escape)
    }

    #[test]
    fn plain_names_are_unchanged() {
        for name in [
            "bash",
            "kworker/0:1-events",
            "Web Content",
            "(sd-pam)",
            "=1+1",
            "systemd-journal",
        ] {
            assert_eq!(escape_name(name.as_bytes()), name);
        }
        assert_eq!(escape_name(b""), "");
        // Other scripts are names, not attacks.
        assert_eq!(escape_name("café".as_bytes()), "café");
        assert_eq!(escape_name("进程".as_bytes()), "进程");
    }

    #[test]
    fn terminal_escapes_become_visible_text() {
        assert_eq!(escape_name(b"\x1b[31mevil\x1b[0m"), "\\x1b[31mevil\\x1b[0m");
        assert_eq!(
            escape_name(b"a\tb\nc\rd\x07\x00\x7f"),
            "a\\x09b\\x0ac\\x0dd\\x07\\x00\\x7f"
        );
        // C1 controls: U+009B is CSI on terminals that honour 8-bit controls.
        assert_eq!(escape_name("x\u{9b}2J".as_bytes()), "x\\xc2\\x9b2J");
        assert_eq!(escape_name("\u{85}".as_bytes()), "\\xc2\\x85");
    }

    #[test]
    fn bidi_controls_and_separators_are_escaped() {
        assert_eq!(
            escape_name("a\u{202e}gpj.exe".as_bytes()),
            "a\\xe2\\x80\\xaegpj.exe"
        );
        for c in [
            '\u{061c}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{2066}', '\u{2069}', '\u{2028}',
            '\u{2029}',
        ] {
            let escaped = escape_name(c.to_string().as_bytes());
            assert!(
                escaped.starts_with("\\x") && inert(&escaped),
                "{c:?} -> {escaped}"
            );
        }
        // Neighbours of the escaped ranges are ordinary characters.
        assert_eq!(
            escape_name("\u{2065}\u{206a}\u{a0}".as_bytes()),
            "\u{2065}\u{206a}\u{a0}"
        );
    }

    #[test]
    fn invalid_utf8_is_escaped_byte_by_byte() {
        assert_eq!(escape_name(b"ab\xff\xfecd"), "ab\\xff\\xfecd");
        // A truncated sequence (comm is cut at 15 bytes, possibly inside a character).
        assert_eq!(escape_name("名前".as_bytes()[..4].as_ref()), "名\\xe5");
        assert_eq!(escape_name(b"\xc2"), "\\xc2");
    }

    #[test]
    fn backslash_is_doubled_so_escapes_cannot_be_forged() {
        assert_eq!(escape_name(b"\\x1b"), "\\\\x1b");
        assert_ne!(escape_name(b"\\x1b"), escape_name(b"\x1b"));
        assert_eq!(escape_name(b"a\\b"), "a\\\\b");
    }

    #[test]
    fn every_byte_sequence_yields_inert_text() {
        // Every 1- and 2-byte name, and 3-byte names around the escaped code points.
        for a in 0..=255u8 {
            assert!(inert(&escape_name(&[a])), "{a:#x}");
            for b in 0..=255u8 {
                assert!(inert(&escape_name(&[a, b])), "{a:#x} {b:#x}");
                for lead in [0xd8u8, 0xe2] {
                    assert!(
                        inert(&escape_name(&[lead, a, b])),
                        "{lead:#x} {a:#x} {b:#x}"
                    );
                }
            }
        }
    }
}
