//! Escaping of text that a process controls (comm, cmdline, mount paths), so
//! that no process can forge a row or move the terminal cursor.

use std::borrow::Cow;
use std::fmt::Write;

/// Returns whether a character must not reach a terminal as it is: control
/// characters (C0, DEL, C1), line and paragraph separators, and the invisible
/// format characters that reorder or hide text (bidi overrides, zero-width).
fn is_unsafe(c: char, escape_space: bool) -> bool {
    c.is_control()
        || c == '\\'
        || (escape_space && c.is_whitespace())
        || matches!(c,
            '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}')
}

fn escape_with(text: &str, escape_space: bool) -> Cow<'_, str> {
    if !text.chars().any(|c| is_unsafe(c, escape_space)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !is_unsafe(c, escape_space) {
            out.push(c);
        } else if (c as u32) < 0x80 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

/// Escapes text for a table cell: control and invisible characters and the
/// backslash become `\xNN` or `\u{NNNN}`.
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_with(text, false)
}

/// Escapes text for `--raw` output, where a single space separates columns:
/// like [`escape`], and white space too.
pub fn escape_raw(text: &str) -> Cow<'_, str> {
    escape_with(text, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(escape("sleep 600"), Cow::Borrowed("sleep 600")));
    }

    #[test]
    fn newline_cannot_forge_row() {
        assert_eq!(escape("evil\n1 net:[1] fake"), "evil\\x0a1 net:[1] fake");
    }

    #[test]
    fn terminal_escape_is_neutralised() {
        assert_eq!(escape("\x1b[2J\x1b]0;title\x07"), "\\x1b[2J\\x1b]0;title\\x07");
    }

    #[test]
    fn bidi_override_is_escaped() {
        assert_eq!(escape("a\u{202E}b"), "a\\u{202e}b");
        assert_eq!(escape("x\u{200B}y"), "x\\u{200b}y");
        assert_eq!(escape("c1\u{85}"), "c1\\u{85}");
    }

    #[test]
    fn backslash_is_escaped() {
        assert_eq!(escape("a\\x0ab"), "a\\x5cx0ab");
    }

    #[test]
    fn raw_escapes_spaces() {
        assert_eq!(escape_raw("sleep 600\t"), "sleep\\x20600\\x09");
        assert_eq!(escape("sleep 600"), "sleep 600");
    }

    #[test]
    fn printable_unicode_is_kept() {
        assert_eq!(escape("naïve 名前"), "naïve 名前");
    }
}
