//! The tree of an nginx config: directives with their words, blocks, and the
//! file and line each came from; parsed from one file's text, printed back as
//! text that parses to the same tree.

use std::fmt;

use super::lexer::{Ending, Lexer, SyntaxError};

/// Blocks nested deeper than this are refused: real configs nest four or
/// five deep (http > server > location > location > if), and the bound keeps
/// hostile input from exhausting the stack of code that walks the tree.
pub const MAX_DEPTH: usize = 50;

/// Which file of a [`super::Loaded`] config a directive came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u32);

/// Where a directive is: file and 1-based line of its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct At {
    pub file: FileId,
    pub line: u32,
}

/// One directive: `name args...;` or `name args... { block }`.
#[derive(Debug, Clone)]
pub struct Directive {
    /// The first word, unescaped (`location`, `fastcgi_param`).
    pub name: String,
    /// The other words, unescaped, variables kept as text (`$document_root`).
    pub args: Vec<String>,
    /// The body of a block directive; `None` for `;`.
    pub block: Option<Vec<Directive>>,
    pub at: At,
}

impl Directive {
    /// The directive with its arguments on one line, as a note quotes it.
    #[must_use]
    pub fn head(&self) -> String {
        let mut s = String::new();
        push_word(&mut s, &self.name);
        for arg in &self.args {
            s.push(' ');
            push_word(&mut s, arg);
        }
        s
    }

    /// The argument at `i`, if there is one.
    #[must_use]
    pub fn arg(&self, i: usize) -> Option<&str> {
        self.args.get(i).map(String::as_str)
    }

    /// The body, empty for a simple directive.
    #[must_use]
    pub fn children(&self) -> &[Directive] {
        self.block.as_deref().unwrap_or(&[])
    }
}

/// Trees compare by content, not by where they were read.
impl PartialEq for Directive {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.args == other.args && self.block == other.block
    }
}

impl Eq for Directive {}

/// Parses one file's text into its directives (no `include` followed).
///
/// # Errors
///
/// The first syntax error, with its line, or blocks nested deeper than
/// [`MAX_DEPTH`].
pub fn parse(src: &[u8], file: FileId) -> Result<Vec<Directive>, SyntaxError> {
    let mut lexer = Lexer::new(src);
    // The blocks being read, innermost last, each with its opening directive.
    let mut stack: Vec<(Directive, Vec<Directive>)> = Vec::new();
    let mut top: Vec<Directive> = Vec::new();
    loop {
        let st = lexer.next_statement()?;
        let at = At {
            file,
            line: st.line,
        };
        match st.end {
            Ending::Semicolon | Ending::BlockStart => {
                let mut words = st.words.into_iter();
                let name = words.next().unwrap_or_default();
                let directive = Directive {
                    name,
                    args: words.collect(),
                    block: None,
                    at,
                };
                if st.end == Ending::BlockStart {
                    if stack.len() >= MAX_DEPTH {
                        return Err(SyntaxError {
                            line: st.line,
                            message: format!("blocks nested deeper than {MAX_DEPTH}"),
                        });
                    }
                    stack.push((directive, Vec::new()));
                } else {
                    match stack.last_mut() {
                        Some((_, body)) => body.push(directive),
                        None => top.push(directive),
                    }
                }
            }
            Ending::BlockEnd => {
                let Some((mut open, body)) = stack.pop() else {
                    return Err(SyntaxError {
                        line: st.line,
                        message: "unexpected \"}\"".to_owned(),
                    });
                };
                open.block = Some(body);
                match stack.last_mut() {
                    Some((_, parent)) => parent.push(open),
                    None => top.push(open),
                }
            }
            Ending::Eof => {
                if let Some((open, _)) = stack.last() {
                    return Err(SyntaxError {
                        line: st.line,
                        message: format!(
                            "unexpected end of file, expecting \"}}\" (for \"{}\" on line {})",
                            open.name, open.at.line
                        ),
                    });
                }
                return Ok(top);
            }
        }
    }
}

/// Whether `word` reads back as itself without quotes.
fn plain(word: &str) -> bool {
    let b = word.as_bytes();
    if b.is_empty() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b';' | b'{' | b'}' | b'"' | b'\'' | b'#' => return false,
            c if c.is_ascii_whitespace() || c.is_ascii_control() => return false,
            b'\\' => {
                // `\x` stays as is unless x is one nginx unescapes, or a
                // space the reader would take into the word.
                match b.get(i + 1) {
                    None => return false,
                    Some(n) if b"\"'\\trn".contains(n) || !n.is_ascii_graphic() => return false,
                    Some(n) if b";{}#".contains(n) => return false,
                    Some(_) => i += 2,
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    true
}

/// Appends `word` so that nginx's reader gives it back: as is when it can,
/// else double-quoted with `\` and `"` escaped.
fn push_word(out: &mut String, word: &str) {
    if plain(word) {
        out.push_str(word);
        return;
    }
    out.push('"');
    for c in word.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// Prints directives as nginx config text, four spaces per level.
#[must_use]
pub fn print(directives: &[Directive]) -> String {
    let mut out = String::new();
    print_into(&mut out, directives, 0);
    out
}

fn print_into(out: &mut String, directives: &[Directive], depth: usize) {
    for d in directives {
        for _ in 0..depth {
            out.push_str("    ");
        }
        out.push_str(&d.head());
        match &d.block {
            None => out.push_str(";\n"),
            Some(body) => {
                out.push_str(" {\n");
                print_into(out, body, depth + 1);
                for _ in 0..depth {
                    out.push_str("    ");
                }
                out.push_str("}\n");
            }
        }
    }
}

impl fmt::Display for Directive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        print_into(&mut s, std::slice::from_ref(self), 0);
        f.write_str(s.trim_end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const F: FileId = FileId(0);

    fn tree(src: &str) -> Vec<Directive> {
        parse(src.as_bytes(), F).unwrap_or_else(|e| panic!("{e}\n{src}"))
    }

    #[test]
    fn blocks_nest_and_keep_lines() {
        let t = tree("http {\n  server {\n    listen 80;\n  }\n}\nevents {}\n");
        assert_eq!(t.len(), 2);
        let server = &t[0].children()[0];
        assert_eq!((server.name.as_str(), server.at.line), ("server", 2));
        assert_eq!(server.children()[0].head(), "listen 80");
        assert_eq!(server.children()[0].at.line, 3);
        assert_eq!(t[1].block.as_deref(), Some(&[][..]));
    }

    #[test]
    fn unbalanced_braces_are_errors() {
        let e = parse(b"a {\n b;\n", F).unwrap_err();
        assert_eq!(e.line, 3);
        assert!(
            e.message.contains("expecting \"}\" (for \"a\" on line 1)"),
            "{e}"
        );
        assert_eq!(parse(b"a;\n}", F).unwrap_err().message, "unexpected \"}\"");
    }

    #[test]
    fn depth_is_bounded() {
        let deep = "a {".repeat(MAX_DEPTH + 1) + &"}".repeat(MAX_DEPTH + 1);
        let e = parse(deep.as_bytes(), F).unwrap_err();
        assert!(e.message.contains("nested deeper"), "{e}");
        let ok = "a {".repeat(MAX_DEPTH) + &"}".repeat(MAX_DEPTH);
        assert!(parse(ok.as_bytes(), F).is_ok());
    }

    #[test]
    fn printing_quotes_only_what_needs_it() {
        let t = tree(
            r#"location ~ \.php(/|$) { fastcgi_param A "a b"; set $x ""; return 200 "{;}\n"; }"#,
        );
        assert_eq!(
            print(&t),
            "location ~ \\.php(/|$) {\n    fastcgi_param A \"a b\";\n    set $x \"\";\n    return 200 \"{;}\n\";\n}\n"
        );
        // `\t` written unquoted would be unescaped to a tab: keep it quoted.
        let t = vec![Directive {
            name: "a".into(),
            args: vec![r"\t".into(), r"x\".into(), "${v}".into()],
            block: None,
            at: At { file: F, line: 1 },
        }];
        assert_eq!(print(&t), "a \"\\\\t\" \"x\\\\\" \"${v}\";\n");
        assert_eq!(tree(&print(&t)), t);
    }

    #[test]
    fn real_configs_round_trip() {
        for src in [
            include_str!("../../tests/fixtures/nginx/sites-available/default"),
            include_str!("../../tests/fixtures/nginx/snippets/fastcgi-php.conf"),
            include_str!("../../tests/fixtures/nginx/fastcgi.conf"),
            include_str!("../../tests/fixtures/nginx/nginx.conf"),
        ] {
            let t = tree(src);
            assert!(!t.is_empty());
            assert_eq!(tree(&print(&t)), t);
        }
    }

    /// Words with every byte that means something to the reader.
    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z_]{1,8}",
            "[ -~\t\n\r]{0,12}",
            proptest::collection::vec(
                prop_oneof![
                    Just("\\".to_owned()),
                    Just("\"".to_owned()),
                    Just("'".to_owned()),
                    Just("$".to_owned()),
                    Just("{".to_owned()),
                    Just("}".to_owned()),
                    Just(";".to_owned()),
                    Just("#".to_owned()),
                    Just(" ".to_owned()),
                    Just("\\t".to_owned()),
                    Just("é".to_owned()),
                    "[a-z]".prop_map(|s| s),
                ],
                0..8
            )
            .prop_map(|parts| parts.concat()),
        ]
    }

    fn directive() -> impl Strategy<Value = Directive> {
        let leaf =
            (word(), proptest::collection::vec(word(), 0..4)).prop_map(|(name, args)| Directive {
                name,
                args,
                block: None,
                at: At { file: F, line: 0 },
            });
        leaf.prop_recursive(4, 32, 6, |inner| {
            (
                word(),
                proptest::collection::vec(word(), 0..3),
                proptest::collection::vec(inner, 0..6),
            )
                .prop_map(|(name, args, body)| Directive {
                    name,
                    args,
                    block: Some(body),
                    at: At { file: F, line: 0 },
                })
        })
    }

    proptest! {
        /// Whatever the words hold, printing then parsing gives the tree back.
        #[test]
        fn print_then_parse_is_identity(t in proptest::collection::vec(directive(), 0..6)) {
            let text = print(&t);
            let back = parse(text.as_bytes(), F);
            prop_assert_eq!(back.as_ref().ok(), Some(&t), "{}", text);
        }

        /// Any bytes: an error or a tree, never a panic; a tree prints to
        /// text that parses to the same tree.
        #[test]
        fn arbitrary_bytes_never_panic(src in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(t) = parse(&src, F) {
                let again = parse(print(&t).as_bytes(), F);
                prop_assert_eq!(again.ok(), Some(t));
            }
        }

        /// Text made of the reader's special characters (far likelier to
        /// parse than random bytes): same properties.
        #[test]
        fn config_like_text_reparses(src in "([a-z$ ;{}#\"'\\\\\n]|\\$\\{|\\\\[tn\"]){0,80}") {
            if let Ok(t) = parse(src.as_bytes(), F) {
                let again = parse(print(&t).as_bytes(), F);
                prop_assert_eq!(again.ok(), Some(t), "{:?}", src);
            }
        }

        /// A real config with one byte changed never panics the parser.
        #[test]
        fn mutated_real_config_never_panics(pos in 0usize..2000, byte in any::<u8>()) {
            let mut src = include_bytes!("../../tests/fixtures/nginx/sites-available/default").to_vec();
            let i = pos % src.len();
            src[i] = byte;
            let _ = parse(&src, F);
        }
    }
}
