//! Splits `.webnn` text into tokens, each with the position of its first
//! character. Whitespace and `//` or `#` line comments are skipped.

use super::ast::Pos;
use super::printer::format_float;
use super::ParseError;

/// One token of the grammar.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
    /// A name: `[A-Za-z_][A-Za-z0-9_]*`. Keywords (`inputs`, `true`, `f32`,
    /// ...) are identifiers too; the parser gives them meaning by position.
    Ident(String),
    Int(i128),
    Float(f64),
    Str(String),
    /// `@name` (no space after the `@`).
    Annotation(String),
    /// One of `{ } [ ] ( ) , ; : =`.
    Punct(char),
    Eof,
}

impl Tok {
    /// How an error message shows the token.
    pub(super) fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Int(i) => format!("`{i}`"),
            Tok::Float(x) => format!("`{}`", format_float(*x)),
            Tok::Str(_) => "a string".to_string(),
            Tok::Annotation(s) => format!("`@{s}`"),
            Tok::Punct(c) => format!("`{c}`"),
            Tok::Eof => "end of file".to_string(),
        }
    }
}

#[derive(Clone, Debug)]
pub(super) struct Token {
    pub tok: Tok,
    pub pos: Pos,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

struct Lexer {
    chars: Vec<char>,
    i: usize,
    line: u32,
    col: u32,
}

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.chars.get(self.i + n).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += 1;
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.col = 1;
        } else {
            self.col = self.col.saturating_add(1);
        }
        Some(c)
    }

    fn pos(&self) -> Pos {
        Pos::new(self.line, self.col)
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> String {
        let mut s = String::new();
        while let Some(c) = self.peek().filter(|&c| f(c)) {
            s.push(c);
            self.bump();
        }
        s
    }

    fn skip_trivia(&mut self) {
        while let Some(c) = self.peek() {
            if matches!(c, ' ' | '\t' | '\r' | '\n') {
                self.bump();
            } else if c == '#' || (c == '/' && self.peek_at(1) == Some('/')) {
                while self.peek().is_some_and(|c| c != '\n') {
                    self.bump();
                }
            } else {
                break;
            }
        }
    }

    fn token(&mut self) -> Result<Token, ParseError> {
        self.skip_trivia();
        let pos = self.pos();
        let Some(c) = self.peek() else {
            return Ok(Token { tok: Tok::Eof, pos });
        };
        let tok = match c {
            '{' | '}' | '[' | ']' | '(' | ')' | ',' | ';' | ':' | '=' => {
                self.bump();
                Tok::Punct(c)
            }
            '"' => self.string(pos)?,
            '@' => {
                self.bump();
                if !self.peek().is_some_and(is_ident_start) {
                    return Err(ParseError::new(pos, "expected an annotation name right after `@`"));
                }
                Tok::Annotation(self.take_while(is_ident_char))
            }
            '-' | '0'..='9' => self.number(pos)?,
            c if is_ident_start(c) => Tok::Ident(self.take_while(is_ident_char)),
            c => return Err(ParseError::new(pos, format!("unexpected character `{}`", c.escape_debug()))),
        };
        Ok(Token { tok, pos })
    }

    /// A string with the escapes `\"`, `\\` and `\n`; it may not span lines.
    fn string(&mut self, start: Pos) -> Result<Tok, ParseError> {
        self.bump();
        let mut s = String::new();
        loop {
            let pos = self.pos();
            match self.bump() {
                None | Some('\n') => return Err(ParseError::new(start, "unterminated string")),
                Some('"') => return Ok(Tok::Str(s)),
                Some('\\') => match self.bump() {
                    Some('"') => s.push('"'),
                    Some('\\') => s.push('\\'),
                    Some('n') => s.push('\n'),
                    None | Some('\n') => return Err(ParseError::new(start, "unterminated string")),
                    Some(c) => {
                        return Err(ParseError::new(
                            pos,
                            format!("unknown escape `\\{}` in string (only \\\", \\\\ and \\n are allowed)", c.escape_debug()),
                        ));
                    }
                },
                Some(c) => s.push(c),
            }
        }
    }

    /// `-?digits(.digits)?([eE][+-]?digits)?`, or `-Infinity`. A number
    /// with a fraction or an exponent is a float; otherwise an exact integer.
    fn number(&mut self, start: Pos) -> Result<Tok, ParseError> {
        let mut text = String::new();
        if self.peek() == Some('-') {
            self.bump();
            text.push('-');
            if self.peek().is_some_and(is_ident_start) {
                let word = self.take_while(is_ident_char);
                return if word == "Infinity" {
                    Ok(Tok::Float(f64::NEG_INFINITY))
                } else {
                    Err(ParseError::new(start, format!("expected a number after `-`, found `{word}`")))
                };
            }
            if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                return Err(ParseError::new(start, "expected a number after `-`"));
            }
        }
        text.push_str(&self.take_while(|c| c.is_ascii_digit()));
        let mut is_float = false;
        if self.peek() == Some('.') {
            is_float = true;
            text.push('.');
            self.bump();
            let frac = self.take_while(|c| c.is_ascii_digit());
            if frac.is_empty() {
                return Err(ParseError::new(start, format!("expected a digit after `{text}`")));
            }
            text.push_str(&frac);
        }
        if let Some(e @ ('e' | 'E')) = self.peek() {
            is_float = true;
            text.push(e);
            self.bump();
            if let Some(sign @ ('+' | '-')) = self.peek() {
                text.push(sign);
                self.bump();
            }
            let exp = self.take_while(|c| c.is_ascii_digit());
            if exp.is_empty() {
                return Err(ParseError::new(start, format!("expected exponent digits after `{text}`")));
            }
            text.push_str(&exp);
        }
        if let Some(c) = self.peek().filter(|&c| is_ident_char(c) || c == '.') {
            return Err(ParseError::new(start, format!("invalid number: `{text}` is followed by `{c}`")));
        }
        if is_float {
            // The syntax above is always valid for f64; a huge exponent gives infinity.
            text.parse()
                .map(Tok::Float)
                .map_err(|_| ParseError::new(start, format!("invalid number `{text}`")))
        } else {
            text.parse()
                .map(Tok::Int)
                .map_err(|_| ParseError::new(start, format!("integer `{text}` does not fit in 128 bits")))
        }
    }
}

/// Tokenizes `src`; the last token is always [`Tok::Eof`].
pub(super) fn tokenize(src: &str) -> Result<Vec<Token>, ParseError> {
    let mut lexer = Lexer { chars: src.chars().collect(), i: 0, line: 1, col: 1 };
    let mut tokens = Vec::new();
    loop {
        let t = lexer.token()?;
        let end = t.tok == Tok::Eof;
        tokens.push(t);
        if end {
            return Ok(tokens);
        }
    }
}
