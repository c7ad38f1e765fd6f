//! nginx's configuration language, and `fpmlb import-nginx`.
//!
//! - `lexer`: bytes to statements, exactly as nginx's own reader
//!   (`ngx_conf_read_token`) splits, quotes and unescapes them;
//! - `tree`: statements to a tree of directives, each with its file and
//!   line, and the tree printed back as text that reads the same;
//! - `load`: a file from disk with its `include`s (globs, nginx's prefix
//!   rules) spliced in, every size and depth bounded, cycles refused;
//! - `import`: the tree to fpmlb YAML plus notes on what was not
//!   translated (pure).
//!
//! No crate fitted: the maintained nginx parsers are a typed AST that refuses
//! unknown directives (nginx-config) or a linter's lossless tree that does
//! not follow includes and unescapes differently from nginx
//! (nginx-lint-parser); a config read differently from nginx would be
//! imported wrong without a word said.

pub mod import;
pub mod lexer;
pub mod load;
pub mod tree;

pub use import::{Import, ImportError, Note, NoteKind, Options, import};
pub use load::{Limits, LoadError, Loaded, load};
pub use tree::{At, Directive, FileId, parse, print};
