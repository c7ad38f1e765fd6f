//! Writing YAML text by hand: the importer's output carries comments (where
//! each key came from, what was not translated), which serde cannot write.

/// Words YAML 1.1 or 1.2 readers take as something else than a string.
const RESERVED: &[&str] = &[
    "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~",
];

/// `s` as a YAML scalar: plain when that reads back as the same string,
/// else double-quoted (JSON's escapes are valid in YAML double quotes).
#[must_use]
pub(super) fn scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'.' | b'-' | b'+' | b'@')
        })
        && !s.starts_with(['-', '.', '@'])
        && !RESERVED.contains(&s.to_ascii_lowercase().as_str())
        && !s
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'_')
        && s.parse::<f64>().is_err()
        && !(s.len() > 1
            && s.starts_with('0')
            && s[1..].starts_with(['x', 'o', 'b', 'X', 'O', 'B']));
    if plain {
        s.to_owned()
    } else {
        // JSON's string is YAML's double-quoted one, but for characters
        // JSON leaves as they are and YAML does not: DEL and C1 controls
        // (not printable in YAML), and the line breaks YAML 1.1 readers
        // see in U+0085, U+2028 and U+2029. Each as a \u escape, which
        // both read alike.
        let json = serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned());
        let mut out = String::with_capacity(json.len());
        for c in json.chars() {
            if needs_escape(c) {
                out.push_str(&format!("\\u{:04x}", c as u32));
            } else {
                out.push(c);
            }
        }
        out
    }
}

/// A character no YAML reader may take as it is in a quoted scalar or a
/// comment: a control character, a YAML 1.1 line break, a non-character.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
        )
}

/// Makes text safe inside a `#` comment: one line, control characters shown.
#[must_use]
pub(super) fn comment_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Lines of YAML being written; a section can be written commented out.
#[derive(Default)]
pub(super) struct Writer {
    out: String,
    /// Write every line as a comment (`--compat` for keys this fpmlb lacks).
    pub commented: bool,
}

impl Writer {
    /// A line at `indent` levels of two spaces.
    pub fn line(&mut self, indent: usize, text: &str) {
        if self.commented {
            self.out.push_str("# ");
        }
        for _ in 0..indent {
            self.out.push_str("  ");
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    /// `key: value` with a trailing comment when `why` is not empty.
    pub fn key(&mut self, indent: usize, key: &str, value: &str, why: &str) {
        if why.is_empty() {
            self.line(indent, &format!("{key}: {value}"));
        } else {
            self.line(indent, &format!("{key}: {value}  # {}", comment_text(why)));
        }
    }

    /// `- value` with a trailing comment when `why` is not empty.
    pub fn item(&mut self, indent: usize, value: &str, why: &str) {
        if why.is_empty() {
            self.line(indent, &format!("- {value}"));
        } else {
            self.line(indent, &format!("- {value}  # {}", comment_text(why)));
        }
    }

    /// A comment line (inside a commented-out section, a comment of it).
    pub fn comment(&mut self, indent: usize, text: &str) {
        if self.commented {
            self.out.push_str("# ");
        }
        for _ in 0..indent {
            self.out.push_str("  ");
        }
        self.out.push_str("# ");
        self.out.push_str(&comment_text(text));
        self.out.push('\n');
    }

    pub fn blank(&mut self) {
        self.out.push('\n');
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_read_back_as_strings() {
        for (s, want) in [
            ("/var/www/html", "/var/www/html"),
            ("60s", "60s"),
            ("index.php", "index.php"),
            ("127.0.0.2:9000", "\"127.0.0.2:9000\""),
            (":80", "\":80\""),
            ("0", "\"0\""),
            ("1.5", "\"1.5\""),
            ("1e3", "\"1e3\""),
            ("0x1f", "\"0x1f\""),
            ("inf", "\"inf\""),
            ("on", "\"on\""),
            ("No", "\"No\""),
            ("", "\"\""),
            ("a b", "\"a b\""),
            ("-x", "\"-x\""),
            ("line\nbreak \"q\"", "\"line\\nbreak \\\"q\\\"\""),
        ] {
            assert_eq!(scalar(s), want, "{s:?}");
        }
    }

    /// What YAML 1.1 readers (PyYAML, Ruby, Ansible) take as a line break,
    /// and what no YAML reader takes in a quoted scalar, is escaped: in a
    /// value and in a comment, no nginx word can add a key; a value reads
    /// back as it was.
    #[test]
    fn line_breaks_of_yaml_1_1_are_escaped() {
        let word = "a\u{2028}max_body_size: 1k\u{2029}b\u{85}c\u{7f}d\u{9b}e";
        let quoted = scalar(word);
        assert_eq!(
            quoted,
            "\"a\\u2028max_body_size: 1k\\u2029b\\u0085c\\u007fd\\u009be\""
        );
        let back: String = serde_saphyr::from_str(&quoted).unwrap();
        assert_eq!(back, word);
        let comment = comment_text(word);
        assert!(
            !comment.contains(['\u{2028}', '\u{2029}', '\u{85}', '\u{7f}', '\u{9b}']),
            "{comment}"
        );
    }

    #[test]
    fn commented_sections_stay_comments() {
        let mut w = Writer::default();
        w.key(0, "a", "1", "");
        w.commented = true;
        w.line(1, "b: 2");
        w.comment(1, "why\nnot");
        w.commented = false;
        w.comment(0, "top");
        w.commented = true;
        w.commented = false;
        w.key(0, "c", "3", "from x:1");
        assert_eq!(
            w.finish(),
            "a: 1\n#   b: 2\n#   # why\\nnot\n# top\nc: 3  # from x:1\n"
        );
    }
}
