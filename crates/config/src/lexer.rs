//! The nginx config lexer, a port of `ngx_conf_read_token()` (src/core/ngx_conf_file.c).
//!
//! Same token rules, same quirks, same error texts:
//! - tokens are separated by space, tab, CR, LF; `;` ends a directive, `{` opens a block and
//!   `}` (at the start of a token) closes one;
//! - `#` at the start of a token comments out the rest of the line (`a#b` is one token);
//! - `"…"` and `'…'` quote only at the start of a token, and the closing quote must be followed
//!   by a space, `;`, `{` or `)` (for `if ($a = "b")`);
//! - a backslash protects the next character from being a delimiter; when the word is stored,
//!   `\"`, `\'`, `\\` become the character, `\t`, `\r`, `\n` the control characters, and any
//!   other `\x` stays `\x` (so regexes like `\.php$` survive unquoted);
//! - `{` right after `$` stays in the token, so `${var}` is one token; a `}` inside a token is
//!   an ordinary character (only at the start of a token does it close a block).

/// One word of a directive, already unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    pub(crate) value: String,
    /// Started with `"` or `'`.
    pub(crate) quoted: bool,
    /// 1-based line where the word starts.
    pub(crate) line: u32,
    /// Byte offset of the word's first character (the opening quote, if quoted).
    pub(crate) offset: usize,
}

/// What ended a call to [`Lexer::read_token`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// `;` after at least one word.
    End,
    /// `{` after at least one word.
    BlockStart,
    /// `}` with no pending word.
    BlockDone,
    /// End of input with no pending word.
    Eof,
}

/// A lexer error: the nginx message and the line where it was detected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LexError {
    pub(crate) msg: String,
    pub(crate) line: u32,
}

pub(crate) struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
    line: u32,
    /// Args mode (TOML strings): the end of input ends the words of the one directive.
    eof_ends_args: bool,
}

fn is_space(ch: u8) -> bool {
    matches!(ch, b' ' | b'\t' | b'\r' | b'\n')
}

/// Unescape a raw word the way nginx copies it into `cf->args`.
fn unescape(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut it = raw.iter().copied().peekable();
    while let Some(ch) = it.next() {
        if ch == b'\\' {
            match it.peek().copied() {
                Some(c @ (b'"' | b'\'' | b'\\')) => {
                    out.push(c);
                    it.next();
                    continue;
                }
                Some(b't') => {
                    out.push(b'\t');
                    it.next();
                    continue;
                }
                Some(b'r') => {
                    out.push(b'\r');
                    it.next();
                    continue;
                }
                Some(b'n') => {
                    out.push(b'\n');
                    it.next();
                    continue;
                }
                _ => {}
            }
        }
        out.push(ch);
    }
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        Lexer {
            src: src.as_bytes(),
            pos: 0,
            line: 1,
            eof_ends_args: false,
        }
    }

    /// A lexer for the arguments of one directive written as a string (TOML values).
    pub(crate) fn for_args(src: &'a str) -> Self {
        Lexer {
            eof_ends_args: true,
            ..Lexer::new(src)
        }
    }

    /// The current line (where the last character read is).
    pub(crate) fn line(&self) -> u32 {
        self.line
    }

    fn err(&self, msg: String) -> LexError {
        LexError {
            msg,
            line: self.line,
        }
    }

    fn push_word(&self, args: &mut Vec<Word>, start: usize, end: usize, quoted: bool, line: u32) {
        let raw = self.src.get(start..end).unwrap_or_default();
        args.push(Word {
            value: unescape(raw),
            quoted,
            line,
            offset: if quoted {
                start.saturating_sub(1)
            } else {
                start
            },
        });
    }

    /// Read the words of one directive into `args` (which must be empty) and say what ended
    /// them. A port of `ngx_conf_read_token()`.
    pub(crate) fn read_token(&mut self, args: &mut Vec<Word>) -> Result<Event, LexError> {
        let mut found = false;
        let mut need_space = false;
        let mut last_space = true;
        let mut sharp_comment = false;
        let mut variable = false;
        let mut quoted = false;
        let mut s_quoted = false;
        let mut d_quoted = false;
        let mut start = self.pos;
        let mut start_line = self.line;
        let mut word_quoted = false;

        loop {
            let Some(&ch) = self.src.get(self.pos) else {
                if !args.is_empty() || !last_space {
                    if self.eof_ends_args && !s_quoted && !d_quoted {
                        if !last_space && !need_space {
                            self.push_word(args, start, self.pos, word_quoted, start_line);
                        }
                        return Ok(Event::Eof);
                    }
                    if self.eof_ends_args {
                        return Err(self.err("unexpected end of string".into()));
                    }
                    return Err(self.err("unexpected end of file, expecting \";\" or \"}\"".into()));
                }
                return Ok(Event::Eof);
            };
            self.pos += 1;

            if ch == b'\n' {
                self.line += 1;
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
                    b';' => return Ok(Event::End),
                    b'{' => return Ok(Event::BlockStart),
                    b')' => {
                        last_space = true;
                        need_space = false;
                    }
                    _ => return Err(self.err(format!("unexpected \"{}\"", char::from(ch)))),
                }
            }

            if last_space {
                start = self.pos - 1;
                start_line = self.line;
                word_quoted = false;

                if is_space(ch) {
                    continue;
                }

                match ch {
                    b';' | b'{' => {
                        if args.is_empty() {
                            return Err(self.err(format!("unexpected \"{}\"", char::from(ch))));
                        }
                        if ch == b'{' {
                            return Ok(Event::BlockStart);
                        }
                        return Ok(Event::End);
                    }
                    b'}' => {
                        if !args.is_empty() {
                            return Err(self.err("unexpected \"}\"".into()));
                        }
                        return Ok(Event::BlockDone);
                    }
                    b'#' => {
                        sharp_comment = true;
                        continue;
                    }
                    b'\\' => {
                        quoted = true;
                        last_space = false;
                        continue;
                    }
                    b'"' => {
                        start += 1;
                        d_quoted = true;
                        word_quoted = true;
                        last_space = false;
                        continue;
                    }
                    b'\'' => {
                        start += 1;
                        s_quoted = true;
                        word_quoted = true;
                        last_space = false;
                        continue;
                    }
                    b'$' => {
                        variable = true;
                        last_space = false;
                        continue;
                    }
                    _ => last_space = false,
                }
            } else {
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

                if d_quoted {
                    if ch == b'"' {
                        d_quoted = false;
                        need_space = true;
                        found = true;
                    }
                } else if s_quoted {
                    if ch == b'\'' {
                        s_quoted = false;
                        need_space = true;
                        found = true;
                    }
                } else if is_space(ch) || ch == b';' || ch == b'{' {
                    last_space = true;
                    found = true;
                }

                if found {
                    self.push_word(args, start, self.pos - 1, word_quoted, start_line);
                    if ch == b';' {
                        return Ok(Event::End);
                    }
                    if ch == b'{' {
                        return Ok(Event::BlockStart);
                    }
                    found = false;
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn words(src: &str) -> Vec<(String, bool)> {
        let mut lx = Lexer::new(src);
        let mut args = Vec::new();
        let ev = lx.read_token(&mut args).unwrap();
        assert_eq!(ev, Event::End, "{src}");
        args.into_iter().map(|w| (w.value, w.quoted)).collect()
    }

    fn vals(src: &str) -> Vec<String> {
        words(src).into_iter().map(|w| w.0).collect()
    }

    #[test]
    fn plain_and_quoted() {
        assert_eq!(vals("a b\tc\n d;"), ["a", "b", "c", "d"]);
        assert_eq!(
            words(r#"add_header X "hello world" 'it s';"#),
            [
                ("add_header".to_string(), false),
                ("X".to_string(), false),
                ("hello world".to_string(), true),
                ("it s".to_string(), true),
            ]
        );
        // a quote inside a word is an ordinary character
        assert_eq!(vals(r#"x a"b"c;"#), ["x", "a\"b\"c"]);
        assert_eq!(vals("x \"\";"), ["x", ""]);
    }

    #[test]
    fn escapes() {
        assert_eq!(
            vals(r#"x "a\"b" 'c\'d' "e\\f" "\t\r\n" "\x" \.php$ a\;b;"#),
            ["x", "a\"b", "c'd", "e\\f", "\t\r\n", "\\x", "\\.php$", "a\\;b"]
        );
        // an escaped space does not split the word, and the backslash stays
        assert_eq!(vals(r"x a\ b;"), ["x", "a\\ b"]);
        // unquoted \" and \t are unescaped too
        assert_eq!(vals(r#"x a\"b\tc;"#), ["x", "a\"b\tc"]);
    }

    #[test]
    fn comments() {
        assert_eq!(vals("# c1\nx a#b # c2 ;\n;"), ["x", "a#b"]);
        assert_eq!(vals("x \"# not\";"), ["x", "# not"]);
    }

    #[test]
    fn variables_and_braces() {
        assert_eq!(
            vals("return 200 ${host}x$uri;"),
            ["return", "200", "${host}x$uri"]
        );
        assert_eq!(vals("x a}b;"), ["x", "a}b"]);
        let mut lx = Lexer::new("location /a{");
        let mut args = Vec::new();
        assert_eq!(lx.read_token(&mut args).unwrap(), Event::BlockStart);
        assert_eq!(args.len(), 2);
        assert_eq!(args[1].value, "/a");
    }

    #[test]
    fn if_parens() {
        assert_eq!(vals(r#"if ($a = "b");"#), ["if", "($a", "=", "b", ")"]);
    }

    #[test]
    fn errors() {
        let e = |src: &str| {
            let mut lx = Lexer::new(src);
            loop {
                let mut args = Vec::new();
                match lx.read_token(&mut args) {
                    Ok(Event::Eof) => panic!("no error in {src:?}"),
                    Ok(_) => continue,
                    Err(e) => return (e.msg, e.line),
                }
            }
        };
        assert_eq!(e("x;\n;"), ("unexpected \";\"".into(), 2));
        assert_eq!(e("{"), ("unexpected \"{\"".into(), 1));
        assert_eq!(e("x }"), ("unexpected \"}\"".into(), 1));
        assert_eq!(e("x \"a\"b;"), ("unexpected \"b\"".into(), 1));
        assert_eq!(e("x 'it''s';"), ("unexpected \"'\"".into(), 1));
        assert_eq!(
            e("x\ny"),
            ("unexpected end of file, expecting \";\" or \"}\"".into(), 2)
        );
        assert_eq!(
            e("x \"abc\n\n"),
            ("unexpected end of file, expecting \";\" or \"}\"".into(), 3)
        );
    }

    #[test]
    fn lines_and_offsets() {
        let mut lx = Lexer::new("\n\n  a\n 'b' c;");
        let mut args = Vec::new();
        lx.read_token(&mut args).unwrap();
        let got: Vec<_> = args.iter().map(|w| (w.line, w.offset)).collect();
        assert_eq!(got, [(3, 4), (4, 7), (4, 11)]);
    }

    #[test]
    fn args_mode() {
        let mut lx = Lexer::for_args(r#"X-Msg "hello world" always"#);
        let mut args = Vec::new();
        assert_eq!(lx.read_token(&mut args).unwrap(), Event::Eof);
        let v: Vec<_> = args.iter().map(|w| w.value.as_str()).collect();
        assert_eq!(v, ["X-Msg", "hello world", "always"]);
        let mut lx = Lexer::for_args("'a'");
        let mut args = Vec::new();
        assert_eq!(lx.read_token(&mut args).unwrap(), Event::Eof);
        assert_eq!(args[0].value, "a");
        let mut lx = Lexer::for_args("\"a");
        assert!(lx.read_token(&mut Vec::new()).is_err());
    }
}
