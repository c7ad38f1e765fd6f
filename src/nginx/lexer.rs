//! nginx's configuration lexer: bytes to statements, as `ngx_conf_read_token`
//! (src/core/ngx_conf_file.c) reads them.
//!
//! The grammar has no keywords: a statement is words ended by `;` (a simple
//! directive), `{` (a block opens) or a lone `}` (the block closes). The rules
//! below are nginx's, kept exactly, because a config that nginx reads one way
//! and fpmlb another would be imported wrong without a word said:
//!
//! - a word ends at whitespace, `;` or `{`, never at `}` (`a}` is one word);
//! - `"…"` and `'…'` quote a whole word only when they open it (`a"b` is the
//!   word `a"b`); after a closing quote comes whitespace, `;`, `{` or `)`;
//! - `\` takes the next byte literally while reading; the word is then
//!   unescaped: `\"`, `\'`, `\\` lose the backslash, `\t`, `\r`, `\n` become
//!   the control character, any other `\x` stays as it is (regexes keep `\.`);
//! - `$` followed by `{` does not end a word (`${var}`);
//! - `#` starts a comment only where a word could start (`a#b` is one word);
//! - `;` or `{` with no word before it, and `}` after words, are errors.
//!
//! Variables are kept as text: expanding them is the translator's business.
//! Words must be UTF-8 (nginx takes any byte; fpmlb's YAML cannot carry
//! them), comments need not be.

use std::fmt;

/// How a statement ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    /// `;`: a simple directive.
    Semicolon,
    /// `{`: a block directive; its body follows.
    BlockStart,
    /// A lone `}`: the enclosing block is done.
    BlockEnd,
    /// The end of the input, outside any word.
    Eof,
}

/// One statement: its words (possibly none for `}` and the end of input).
#[derive(Debug)]
pub(super) struct Statement {
    pub words: Vec<String>,
    /// Line of the first word, or of the `}` / end of input without words.
    pub line: u32,
    pub end: Ending,
}

/// A syntax error at a line of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based line.
    pub line: u32,
    /// What is wrong, in nginx's words where nginx has some.
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Reads statements one by one from a whole file.
pub(super) struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
    line: u32,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Shows a byte in an error message.
fn shown(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("\"{}\"", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a [u8]) -> Self {
        Lexer {
            src,
            pos: 0,
            line: 1,
        }
    }

    fn error(&self, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            line: self.line,
            message: message.into(),
        }
    }

    /// The next statement, as `ngx_conf_read_token` returns it.
    pub fn next_statement(&mut self) -> Result<Statement, SyntaxError> {
        let mut words: Vec<String> = Vec::new();
        let mut first_line = self.line;
        let mut need_space = false;
        let mut last_space = true;
        let mut sharp_comment = false;
        let mut variable = false;
        let mut quoted = false;
        let mut s_quoted = false;
        let mut d_quoted = false;
        let mut start = self.pos;
        let mut start_line = self.line;

        loop {
            let Some(&ch) = self.src.get(self.pos) else {
                if !words.is_empty() || !last_space {
                    let what = if d_quoted || s_quoted {
                        "unexpected end of file in a quoted string"
                    } else {
                        "unexpected end of file, expecting \";\" or \"}\""
                    };
                    return Err(self.error(what));
                }
                return Ok(Statement {
                    words,
                    line: self.line,
                    end: Ending::Eof,
                });
            };
            self.pos += 1;

            if ch == b'\n' {
                self.line = self.line.saturating_add(1);
                sharp_comment = false;
            }
            if sharp_comment {
                continue;
            }
            if quoted {
                quoted = false;
                continue;
            }

            if need_space {
                if is_space(ch) {
                    last_space = true;
                    need_space = false;
                    continue;
                }
                match ch {
                    b';' => return Ok(self.done(words, first_line, Ending::Semicolon)),
                    b'{' => return Ok(self.done(words, first_line, Ending::BlockStart)),
                    // nginx lets `)` follow a quoted word (`if ($a = "b")`):
                    // it starts the next word.
                    b')' => {
                        last_space = true;
                        need_space = false;
                    }
                    _ => return Err(self.error(format!("unexpected {}", shown(ch)))),
                }
            }

            if last_space {
                start = self.pos - 1;
                start_line = self.line;
                if is_space(ch) {
                    continue;
                }
                match ch {
                    b';' | b'{' => {
                        if words.is_empty() {
                            return Err(self.error(format!("unexpected {}", shown(ch))));
                        }
                        let end = if ch == b'{' {
                            Ending::BlockStart
                        } else {
                            Ending::Semicolon
                        };
                        return Ok(self.done(words, first_line, end));
                    }
                    b'}' => {
                        if !words.is_empty() {
                            return Err(self.error("unexpected \"}\""));
                        }
                        return Ok(Statement {
                            words,
                            line: self.line,
                            end: Ending::BlockEnd,
                        });
                    }
                    b'#' => {
                        sharp_comment = true;
                        continue;
                    }
                    b'\\' => {
                        quoted = true;
                        last_space = false;
                    }
                    b'"' => {
                        start += 1;
                        d_quoted = true;
                        last_space = false;
                    }
                    b'\'' => {
                        start += 1;
                        s_quoted = true;
                        last_space = false;
                    }
                    b'$' => {
                        variable = true;
                        last_space = false;
                    }
                    _ => last_space = false,
                }
                continue;
            }

            if ch == b'{' && variable {
                continue;
            }
            variable = false;
            if ch == b'\\' {
                quoted = true;
                continue;
            }
            if ch == b'$' {
                variable = true;
                continue;
            }

            let found = if d_quoted {
                if ch == b'"' {
                    d_quoted = false;
                    need_space = true;
                }
                ch == b'"'
            } else if s_quoted {
                if ch == b'\'' {
                    s_quoted = false;
                    need_space = true;
                }
                ch == b'\''
            } else if is_space(ch) || ch == b';' || ch == b'{' {
                last_space = true;
                true
            } else {
                false
            };
            if !found {
                continue;
            }

            let raw = &self.src[start..self.pos - 1];
            let word = String::from_utf8(unescape(raw)).map_err(|_| SyntaxError {
                line: start_line,
                message: "a word that is not UTF-8".to_owned(),
            })?;
            if words.is_empty() {
                first_line = start_line;
            }
            words.push(word);
            match ch {
                b';' => return Ok(self.done(words, first_line, Ending::Semicolon)),
                b'{' => return Ok(self.done(words, first_line, Ending::BlockStart)),
                _ => {}
            }
        }
    }

    fn done(&self, words: Vec<String>, line: u32, end: Ending) -> Statement {
        Statement { words, line, end }
    }
}

/// nginx's unescaping of a word, applied to every word, quoted or not.
fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\'
            && let Some(&next) = raw.get(i + 1)
        {
            let replaced = match next {
                b'"' | b'\'' | b'\\' => Some(next),
                b't' => Some(b'\t'),
                b'r' => Some(b'\r'),
                b'n' => Some(b'\n'),
                _ => None,
            };
            if let Some(b) = replaced {
                out.push(b);
                i += 2;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every statement of `src` as (words, end), or the first error.
    fn statements(src: &str) -> Result<Vec<(Vec<String>, Ending)>, SyntaxError> {
        let mut lexer = Lexer::new(src.as_bytes());
        let mut out = Vec::new();
        loop {
            let st = lexer.next_statement()?;
            if st.end == Ending::Eof {
                return Ok(out);
            }
            out.push((st.words, st.end));
        }
    }

    fn words(src: &str) -> Vec<String> {
        let all = statements(src).unwrap();
        assert_eq!(all.len(), 1, "{all:?}");
        all.into_iter().next().unwrap().0
    }

    fn err(src: &str) -> SyntaxError {
        statements(src).unwrap_err()
    }

    #[test]
    fn words_end_at_space_semicolon_and_brace_but_not_at_closing_brace() {
        assert_eq!(words("a b\tc\r\nd;"), ["a", "b", "c", "d"]);
        assert_eq!(words("return 200 x}y;"), ["return", "200", "x}y"]);
        assert_eq!(
            statements("server{}").unwrap(),
            [
                (vec!["server".to_owned()], Ending::BlockStart),
                (vec![], Ending::BlockEnd)
            ]
        );
    }

    #[test]
    fn quotes_open_a_word_only_at_its_start() {
        assert_eq!(words("a \"b c;{}\" 'd \"e';"), ["a", "b c;{}", "d \"e"]);
        assert_eq!(words("a x\"y'z;"), ["a", "x\"y'z"]);
        assert_eq!(words("a \"\";"), ["a", ""]);
        // After a closing quote: space, `;`, `{` or `)`, as nginx.
        assert_eq!(err("a \"b\"c;").message, "unexpected \"c\"");
        assert_eq!(err("a \"b\"#c;").message, "unexpected \"#\"");
        assert_eq!(
            words("if ($a = \"b\") ;"),
            ["if", "($a", "=", "b", ")"],
            "nginx lets `)` follow a quoted word"
        );
    }

    #[test]
    fn escapes_are_nginx_s() {
        assert_eq!(
            words(r#"a "x\"y\'z\\w" 'q\tr\ns\rt';"#),
            ["a", "x\"y'z\\w", "q\tr\ns\rt"]
        );
        // Other escapes stay: regexes keep their backslashes.
        assert_eq!(words(r"location ~ \.php$ {").len(), 3);
        assert_eq!(words(r"a \.php\$\d;"), ["a", r"\.php\$\d"]);
        // A backslash protects a terminator while reading, and stays.
        assert_eq!(words(r"a b\;c d\ e;"), ["a", r"b\;c", r"d\ e"]);
        assert_eq!(words("a \"b\\\"\";"), ["a", "b\""]);
    }

    #[test]
    fn variables_keep_braces() {
        assert_eq!(words("set $a ${b}c;"), ["set", "$a", "${b}c"]);
        assert_eq!(words("a x${y}z$w;"), ["a", "x${y}z$w"]);
        // `{` after anything else opens a block.
        assert_eq!(
            statements("a x{").unwrap(),
            [(vec!["a".to_owned(), "x".to_owned()], Ending::BlockStart)]
        );
    }

    #[test]
    fn comments_only_where_a_word_starts() {
        assert_eq!(
            words("# c ; {\na b#c; # d }\n"),
            ["a", "b#c"],
            "a comment runs to the end of the line"
        );
        assert_eq!(statements("# only a comment").unwrap(), []);
    }

    #[test]
    fn errors_say_what_and_where() {
        assert_eq!(
            err("a;\n;"),
            SyntaxError {
                line: 2,
                message: "unexpected \";\"".into()
            }
        );
        assert_eq!(err("{").message, "unexpected \"{\"");
        assert_eq!(err("a }").message, "unexpected \"}\"");
        assert_eq!(
            err("a b").message,
            "unexpected end of file, expecting \";\" or \"}\""
        );
        assert_eq!(
            err("a \"b;\n\n").message,
            "unexpected end of file in a quoted string"
        );
        let bad = Lexer::new(b"a \xff;").next_statement().unwrap_err();
        assert_eq!(bad.message, "a word that is not UTF-8");
    }

    #[test]
    fn lines_are_those_of_the_first_word() {
        let mut lexer = Lexer::new(b"\n\n  a\n b;\n}");
        let st = lexer.next_statement().unwrap();
        assert_eq!((st.line, st.words.len()), (3, 2));
        let st = lexer.next_statement().unwrap();
        assert_eq!((st.line, st.end), (5, Ending::BlockEnd));
    }
}
